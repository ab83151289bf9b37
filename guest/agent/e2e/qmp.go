package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmp is a QEMU Machine Protocol client: commands in order, events collected.
type qmp struct {
	conn    net.Conn
	mu      sync.Mutex
	replies chan map[string]any
	events  chan map[string]any
}

func dialQMP(path string, timeout time.Duration) (*qmp, error) {
	deadline := time.Now().Add(timeout)
	var conn net.Conn
	var err error
	for time.Now().Before(deadline) {
		if conn, err = net.Dial("unix", path); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("QMP socket %s: %w", path, err)
	}
	q := &qmp{conn: conn, replies: make(chan map[string]any, 16), events: make(chan map[string]any, 256)}
	go func() {
		sc := bufio.NewScanner(conn)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var msg map[string]any
			if json.Unmarshal(sc.Bytes(), &msg) != nil {
				continue
			}
			switch {
			case msg["event"] != nil:
				select {
				case q.events <- msg:
				default:
				}
			case msg["QMP"] != nil:
			default:
				q.replies <- msg
			}
		}
		close(q.replies)
	}()
	if _, err := q.run("qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return q, nil
}

// run executes a command; a QMP error is returned as an error with its description.
func (q *qmp) run(command string, args map[string]any) (any, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	msg := map[string]any{"execute": command}
	if args != nil {
		msg["arguments"] = args
	}
	data, _ := json.Marshal(msg)
	if _, err := q.conn.Write(append(data, '\n')); err != nil {
		return nil, err
	}
	select {
	case reply, ok := <-q.replies:
		if !ok {
			return nil, fmt.Errorf("QMP closed")
		}
		if e, ok := reply["error"].(map[string]any); ok {
			return nil, fmt.Errorf("%s: %v", command, e["desc"])
		}
		return reply["return"], nil
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s: no reply in 30 s", command)
	}
}

// trayMoved waits for DEVICE_TRAY_MOVED of a device with the given state.
func (q *qmp) trayMoved(id string, open bool, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-q.events:
			data, _ := ev["data"].(map[string]any)
			if ev["event"] == "DEVICE_TRAY_MOVED" && data["id"] == id && data["tray-open"] == open {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("the tray of %s did not move (open=%v) within %v", id, open, timeout)
		}
	}
}
