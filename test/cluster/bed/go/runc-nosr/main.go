// Command runc-nosr runs the real runc after adapting a container's OCI spec to this sandbox.
//
// The sandbox's capability bounding set lacks CAP_SYS_RESOURCE, so runc cannot grant it: a
// privileged container (which asks for every capability) dies with "unable to apply caps:
// operation not permitted", and Docker 20.10 ignores --cap-drop with --privileged. Lowering
// oom_score_adj also needs CAP_SYS_RESOURCE: kubelet asks −998 for every pod sandbox and runc init
// then fails with "can't get final child's PID from pipe: EOF". So, for `create`/`run` (the spec is
// BUNDLE/config.json) and `exec --process FILE`, this wrapper removes CAP_SYS_RESOURCE from every
// capability set and raises oomScoreAdj to no less than its own, then execs the real runc with
// the same arguments. Installed as dockerd's default runtime on the host and as containerd's runc
// inside the kind nodes.
//
// The real runc: $RUNC_NOSR_REAL, else this program's path + ".real" when that exists, else
// /usr/bin/runc, else /usr/sbin/runc.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const capSysResource = "CAP_SYS_RESOURCE"

func main() {
	args := os.Args[1:]
	if err := adapt(args); err != nil {
		fmt.Fprintf(os.Stderr, "runc-nosr: %v\n", err)
		os.Exit(1)
	}
	real := realRunc()
	if err := syscall.Exec(real, append([]string{real}, args...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runc-nosr: exec %s: %v\n", real, err)
		os.Exit(1)
	}
}

func realRunc() string {
	if path := os.Getenv("RUNC_NOSR_REAL"); path != "" {
		return path
	}
	if self, err := os.Executable(); err == nil {
		if _, err := os.Stat(self + ".real"); err == nil {
			return self + ".real"
		}
	}
	for _, path := range []string{"/usr/bin/runc", "/usr/sbin/runc"} {
		if self, _ := os.Executable(); path == self {
			continue
		}
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	return "/usr/bin/runc"
}

// adapt rewrites the spec file the runc command line names, if any.
func adapt(args []string) error {
	command, flags := splitCommand(args)
	switch command {
	case "create", "run":
		bundle := flagValue(flags, "bundle", "b")
		if bundle == "" {
			bundle = "."
		}
		return rewrite(filepath.Join(bundle, "config.json"), func(spec map[string]any) {
			if process, ok := spec["process"].(map[string]any); ok {
				adaptProcess(process)
			}
		})
	case "exec":
		if file := flagValue(flags, "process", "p"); file != "" {
			return rewrite(file, adaptProcess)
		}
	}
	return nil
}

// splitCommand finds the subcommand after runc's global flags (all of which take a value with
// "=" or none, except --root/--log/--log-format/--criu/--rootless which take the next word).
func splitCommand(args []string) (string, []string) {
	valued := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") {
			return arg, args[i+1:]
		}
		if valued[arg] {
			i++
		}
	}
	return "", nil
}

// flagValue returns the value of --long/-short in either "--flag value" or "--flag=value" form.
func flagValue(flags []string, long, short string) string {
	for i, flag := range flags {
		for _, name := range []string{"--" + long, "-" + long, "-" + short} {
			if flag == name && i+1 < len(flags) {
				return flags[i+1]
			}
			if strings.HasPrefix(flag, name+"=") {
				return strings.TrimPrefix(flag, name+"=")
			}
		}
	}
	return ""
}

func rewrite(path string, change func(map[string]any)) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	change(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

func adaptProcess(process map[string]any) {
	if caps, ok := process["capabilities"].(map[string]any); ok {
		for set, list := range caps {
			names, ok := list.([]any)
			if !ok {
				continue
			}
			kept := names[:0]
			for _, name := range names {
				if name != capSysResource {
					kept = append(kept, name)
				}
			}
			caps[set] = kept
		}
	}
	if adj, ok := process["oomScoreAdj"].(float64); ok {
		if own := ownOomScoreAdj(); int(adj) < own {
			process["oomScoreAdj"] = own
		}
	}
}

func ownOomScoreAdj() int {
	raw, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	value, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0
	}
	return value
}
