package agent

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"recontext.dev/guest/agent/internal/layer"
)

// The control socket of a running mount: one JSON request per line, one JSON answer per line
// (guest/agent/README.md, "Command line"). `recontext-ffs set` replaces the directory layers through
// it; the socket path is in the mount's status file. Mode 0600 in a 0700 directory: only the
// user who mounted (root in a guest) may change the stack.

// Request is {"op":"set","layers":[{name,dir,priority}…]} or {"op":"status"}.
type Request struct {
	Op     string          `json:"op"`
	Layers []layer.DirSpec `json:"layers,omitempty"`
}

// Answer is {"ok":true,"result":…} or {"ok":false,"error":"…"}.
type Answer struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// DefaultControlPath is /run/recontext-ffs/<hash of the mountpoint>.sock for root, else under
// the temporary directory.
func DefaultControlPath(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	dir := "/run/recontext-ffs"
	if os.Geteuid() != 0 {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("recontext-ffs-%d", os.Geteuid()))
	}
	return filepath.Join(dir, hex.EncodeToString(sum[:])[:16]+".sock")
}

func serveControl(path string, handle func(Request) (any, error)) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(time.Minute))
				line, err := bufio.NewReader(conn).ReadBytes('\n')
				if err != nil {
					return
				}
				var req Request
				var ans Answer
				if err := json.Unmarshal(line, &req); err != nil {
					ans.Error = "request is not JSON: " + err.Error()
				} else if req.Op != "set" && req.Op != "status" {
					ans.Error = fmt.Sprintf("unknown op %q", req.Op)
				} else if result, err := handle(req); err != nil {
					ans.Error = err.Error()
				} else if ans.Result, err = json.Marshal(result); err == nil {
					ans.OK = true
				}
				data, _ := json.Marshal(ans)
				conn.Write(append(data, '\n'))
			}()
		}
	}()
	return ln, nil
}

// ControlRequest sends one request and returns the result.
func ControlRequest(path string, req Request) (json.RawMessage, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	data, _ := json.Marshal(req)
	if _, err := conn.Write(append(data, '\n')); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	var ans Answer
	if err := json.Unmarshal(line, &ans); err != nil {
		return nil, fmt.Errorf("control socket %s answered %q", path, line)
	}
	if !ans.OK {
		return nil, fmt.Errorf("%s", ans.Error)
	}
	return ans.Result, nil
}
