// Package cli is the recontext-ffs command line (guest/agent/README.md, "Command line"): exit
// status 0 done, 1 failure, 2 usage error.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"recontext.dev/guest/agent/internal/agent"
	"recontext.dev/guest/agent/internal/config"
	"recontext.dev/guest/agent/internal/layer"
	"recontext.dev/guest/agent/internal/logx"
	"recontext.dev/guest/agent/internal/union"
)

const usage = `usage:
  recontext-ffs mount MOUNTPOINT [--layer NAME=DIR:PRIORITY]... [--control SOCKET] [--devices] [--media-dir DIR] [--config FILE]
      Serve the read-only union of the layers at MOUNTPOINT until SIGTERM/SIGINT, then unmount.
      Higher PRIORITY wins. Logs are JSON lines on stderr.
      --devices: also serve the context images on CD-ROM drives, found by their manifest and
      followed as the host swaps them, mounted under --media-dir (default /run/recontext-ffs/media).
      --config: the guest owner's hook policy (default /etc/recontext/ffs.yaml; absent: defaults).
  recontext-ffs set MOUNTPOINT [--layer NAME=DIR:PRIORITY]...
      Replace the whole stack of a running mount, atomically (no --layer: an empty stack).
  recontext-ffs status MOUNTPOINT [--json]
      Print the stack (name, class, priority, digest, source, since) and the last change.
`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Main runs one command and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "mount":
		err = mount(args[1:], stderr)
	case "set":
		err = set(args[1:], stdout)
	case "status":
		err = status(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError{"unknown command " + args[0]}
	}
	var ue usageError
	var le *layer.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "recontext-ffs: %v\n%s", err, usage)
		return 2
	case errors.As(err, &le):
		fmt.Fprintf(stderr, "recontext-ffs: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "recontext-ffs: %v\n", err)
		return 1
	}
}

// parsed is a command line: one MOUNTPOINT, repeatable --layer, and single-valued options.
type parsed struct {
	mountpoint string
	layers     []string
	values     map[string]string
	bools      map[string]bool
}

// parse reads args; valued lists options taking a value, flags those taking none.
func parse(args []string, valued, flags []string) (parsed, error) {
	p := parsed{values: map[string]string{}, bools: map[string]bool{}}
	var positionals []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		switch {
		case !strings.HasPrefix(arg, "--"):
			positionals = append(positionals, arg)
		case name == "layer" || contains(valued, name):
			if !hasValue {
				if i+1 >= len(args) {
					return p, usageError{"--" + name + " needs a value"}
				}
				i++
				value = args[i]
			}
			if name == "layer" {
				p.layers = append(p.layers, value)
			} else {
				p.values[name] = value
			}
		case contains(flags, name) && !hasValue:
			p.bools[name] = true
			// --devices HELPER (the first agent's unit named its ffs-devd helper): the helper is built in now.
			if name == "devices" && i+1 < len(args) && strings.HasPrefix(args[i+1], "/") && len(positionals) > 0 {
				i++
			}
		default:
			return p, usageError{"unknown option " + arg}
		}
	}
	if len(positionals) != 1 {
		return p, usageError{"exactly one MOUNTPOINT is needed"}
	}
	abs, err := filepath.Abs(positionals[0])
	if err != nil {
		return p, err
	}
	p.mountpoint = abs
	return p, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func dirLayers(args []string) ([]layer.DirSpec, []layer.Layer, error) {
	cwd, _ := os.Getwd()
	var specs []layer.DirSpec
	var layers []layer.Layer
	for _, a := range args {
		spec, err := layer.ParseArgument(a, cwd)
		if err != nil {
			return nil, nil, err
		}
		l, err := layer.FromDir(spec)
		if err != nil {
			return nil, nil, err
		}
		specs, layers = append(specs, spec), append(layers, l)
	}
	return specs, layers, nil
}

func mount(args []string, stderr io.Writer) error {
	p, err := parse(args, []string{"control", "media-dir", "config"}, []string{"devices"})
	if err != nil {
		return err
	}
	log := logx.New(stderr)
	// Before mounting: a SIGTERM during the start must unmount, not kill the server under its mount.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	_, layers, err := dirLayers(p.layers)
	if err != nil {
		return err
	}
	cfgPath := p.values["config"]
	if cfgPath == "" {
		cfgPath = config.DefaultPath
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	control := p.values["control"]
	if control != "" {
		control, _ = filepath.Abs(control)
	}
	a, err := agent.Start(agent.Options{
		Mountpoint: p.mountpoint,
		Layers:     layers,
		Control:    control,
		Devices:    p.bools["devices"],
		MediaDir:   p.values["media-dir"],
		Policy:     cfg.Hooks,
		Links:      cfg.Links,
		Log:        log,
		Trace:      os.Getenv("FFS_DEVD_TRACE") == "1",
		AllowOther: os.Geteuid() == 0,
		Union:      union.Options{},
	})
	if err != nil {
		return err
	}
	notifySystemd("READY=1")
	sig := <-signals
	notifySystemd("STOPPING=1")
	log.Info("stopping", "signal", sig.String())
	if err := a.Close(); err != nil {
		return fmt.Errorf("unmount failed: %w", err)
	}
	return nil
}

func readStatus(mountpoint string) (map[string]any, error) {
	// Read through the mount: this process does not serve it.
	data, err := os.ReadFile(filepath.Join(mountpoint, union.StatusDir, union.StatusFile))
	if err != nil {
		return nil, fmt.Errorf("%s is not a recontext-ffs mount (%v)", mountpoint, err)
	}
	var st map[string]any
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: status is not JSON: %v", mountpoint, err)
	}
	return st, nil
}

func set(args []string, stdout io.Writer) error {
	p, err := parse(args, nil, nil)
	if err != nil {
		return err
	}
	cwd, _ := os.Getwd()
	var specs []layer.DirSpec
	var names []string
	for _, a := range p.layers {
		spec, err := layer.ParseArgument(a, cwd)
		if err != nil {
			return err
		}
		specs = append(specs, spec)
		names = append(names, fmt.Sprintf("%s:%d", spec.Name, spec.Priority))
	}
	st, err := readStatus(p.mountpoint)
	if err != nil {
		return err
	}
	control, ok := st["control"].(string)
	if !ok || control == "" {
		return fmt.Errorf("%s: its status names no control socket (not mounted by recontext-ffs mount)", p.mountpoint)
	}
	result, err := agent.ControlRequest(control, agent.Request{Op: "set", Layers: specs})
	if err != nil {
		return err
	}
	var r struct {
		Generation uint64 `json:"generation"`
	}
	json.Unmarshal(result, &r)
	if len(names) == 0 {
		names = []string{"(empty)"}
	}
	fmt.Fprintf(stdout, "generation %d: %s\n", r.Generation, strings.Join(names, " "))
	return nil
}

func status(args []string, stdout io.Writer) error {
	p, err := parse(args, nil, []string{"json"})
	if err != nil {
		return err
	}
	st, err := readStatus(p.mountpoint)
	if err != nil {
		return err
	}
	if p.bools["json"] {
		data, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintf(stdout, "%s\n", data)
		return nil
	}
	fmt.Fprintf(stdout, "%s: generation %v, last change %v\n", p.mountpoint, st["generation"], st["changedAt"])
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRIORITY\tNAME\tCLASS\tDIGEST\tSOURCE\tSINCE")
	layers, _ := st["layers"].([]any)
	for _, raw := range layers {
		l, _ := raw.(map[string]any)
		str := func(k string) string {
			if s, ok := l[k].(string); ok && s != "" {
				return s
			}
			return "-"
		}
		digest := str("digest")
		if len(digest) > 19 {
			digest = digest[:19]
		}
		src, _ := l["source"].(map[string]any)
		source := fmt.Sprintf("dir %v", src["path"])
		if src["kind"] == "device" {
			source = fmt.Sprintf("device %v", src["device"])
		}
		fmt.Fprintf(tw, "%v\t%s\t%s\t%s\t%s\t%s\n", l["priority"], str("name"), str("class"), digest, source, str("since"))
	}
	return tw.Flush()
}

// notifySystemd tells systemd (Type=notify) about the service's state; nothing without
// NOTIFY_SOCKET.
func notifySystemd(state string) {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return
	}
	if strings.HasPrefix(socket, "@") {
		socket = "\x00" + socket[1:] // an abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}
