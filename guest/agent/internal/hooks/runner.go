package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"recontext.dev/guest/agent/internal/layer"
	"recontext.dev/guest/agent/internal/union"
)

// RunRecord is how one run ended, as the status file and the log show it.
type RunRecord struct {
	At         string   `json:"at"`
	Generation uint64   `json:"generation"`
	Paths      []string `json:"paths"`
	ExitCode   *int     `json:"exitCode"` // nil when killed or not started
	Signal     string   `json:"signal,omitempty"`
	Error      string   `json:"error,omitempty"`
	DurationMs int64    `json:"durationMs"`
	Output     string   `json:"output,omitempty"` // the last 4 KB the command wrote
}

// Status is the hooks section of status.json.
type Status struct {
	InForce []HookStatus `json:"inForce"`
	Errors  []StatusErr  `json:"errors"`
}

// HookStatus is one hook in force.
type HookStatus struct {
	Name    string     `json:"name"`
	Layer   string     `json:"layer"`
	Paths   []string   `json:"paths"`
	Action  string     `json:"action"`
	Runs    int        `json:"runs"`
	LastRun *RunRecord `json:"lastRun,omitempty"`
}

// StatusErr is a hooks file that did not parse, or an entry the policy refused.
type StatusErr struct {
	Layer string `json:"layer"`
	Hook  string `json:"hook,omitempty"`
	Error string `json:"error"`
}

const outputTailBytes = 4096

// safePath is the PATH hook commands get (their environment is not the agent's).
const safePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Runner runs the hooks in force when the union's stack changes. Per change: read the new
// stack's hooks files, keep what the policy admits, diff the union views before and after under
// the hooks' paths, and give each hook the changed paths under its own. A hook is debounced:
// changes within DebounceMs of each other make one run with all their paths, counted from the
// stack change; a run never overlaps the previous run of the same hook (changes during a run make
// one more run after it). The first stack (generation 1, at mount) fires nothing.
type Runner struct {
	policy     Policy
	mountpoint string
	log        *slog.Logger
	hashes     contentHashes
	last       indexed // the view of the newest stack indexed

	mu      sync.Mutex
	idle    *sync.Cond
	busy    int // changes being compared + hooks pending or running
	states  map[string]*hookState
	inForce []Hook
	errs    []StatusErr
	closed  bool
}

type indexed struct {
	stack  *union.Stack
	within string
	view   map[string]viewEntry
}

type hookState struct {
	hook       Hook
	pending    map[string]bool
	generation uint64
	timer      *time.Timer
	timerID    int // the timer in force; an older one that fired late finds itself replaced
	due        time.Time
	running    bool
	runs       int
	lastRun    *RunRecord
}

// NewRunner makes a runner; register it with union.OnChange(r.OnChange).
func NewRunner(policy Policy, mountpoint string, log *slog.Logger) *Runner {
	r := &Runner{policy: policy, mountpoint: mountpoint, log: log, states: map[string]*hookState{}}
	r.idle = sync.NewCond(&r.mu)
	return r
}

// OnChange compares the stacks of a swap and schedules the hooks it concerns. It runs inside
// union.Swap (the previous stack's trees are still mounted) and returns once the comparison is done.
func (r *Runner) OnChange(c union.Change) {
	changedAt := time.Now().Add(-c.Took)
	r.mu.Lock()
	r.busy++
	r.mu.Unlock()
	defer r.done()
	perLayer, fileErrs := loadHooks(c.Current)
	inForce, refused := r.policy.Decide(perLayer, r.mountpoint)
	for _, f := range refused {
		fileErrs = append(fileErrs, StatusErr{Layer: f.Layer, Hook: f.Hook, Error: f.Reason})
	}
	for _, e := range fileErrs {
		r.log.Error("hook not in force", "layer", e.Layer, "hook", e.Hook, "error", e.Error)
	}
	r.mu.Lock()
	r.inForce, r.errs = inForce, fileErrs
	r.mu.Unlock()
	var within []string
	for _, h := range inForce {
		within = append(within, h.Paths...)
	}
	if c.Previous.Generation == 0 || len(inForce) == 0 {
		if len(inForce) > 0 {
			r.index(c.Current, within) // the next change compares against it
		}
		return
	}
	started := time.Now()
	before, err := r.index(c.Previous, within)
	if err != nil {
		r.log.Error("hooks: cannot index the previous stack", "generation", c.Current.Generation, "error", err.Error())
		return
	}
	after, err := r.index(c.Current, within)
	if err != nil {
		r.log.Error("hooks: cannot index the new stack", "generation", c.Current.Generation, "error", err.Error())
		return
	}
	changed := diffViews(before, after)
	r.log.Info("stack compared", "generation", c.Current.Generation, "changed", len(changed), "ms", time.Since(started).Milliseconds())
	for _, h := range inForce {
		var mine []string
		for _, p := range changed {
			if slices.ContainsFunc(h.Paths, func(hp string) bool { return PathMatches(hp, p) }) {
				mine = append(mine, p)
			}
		}
		if len(mine) > 0 {
			r.schedule(h, mine, c.Current.Generation, changedAt)
		}
	}
}

// index is the view of a stack under within; the last one made is kept, so the stack a change
// leaves was indexed when it arrived — while its media were surely still there.
func (r *Runner) index(s *union.Stack, within []string) (map[string]viewEntry, error) {
	key := strings.Join(within, "\x00")
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	if last.stack == s && last.within == key {
		return last.view, nil
	}
	view, err := indexView(s, within, &r.hashes)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.last = indexed{stack: s, within: key, view: view}
	r.mu.Unlock()
	return view, nil
}

// loadHooks reads each layer's hooks file, highest priority first.
func loadHooks(s *union.Stack) ([][]Hook, []StatusErr) {
	var per [][]Hook
	var errs []StatusErr
	for _, l := range s.Layers {
		data, err := os.ReadFile(filepath.Join(l.Root, layer.HooksPath))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			errs = append(errs, StatusErr{Layer: l.Name, Error: err.Error()})
			continue
		}
		hooks, err := Parse(data, l.Name, l.Class)
		if err != nil {
			errs = append(errs, StatusErr{Layer: l.Name, Error: err.Error()})
			continue
		}
		per = append(per, hooks)
	}
	return per, errs
}

func (r *Runner) schedule(h Hook, paths []string, generation uint64, changedAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	s := r.states[h.Name]
	if s == nil {
		s = &hookState{pending: map[string]bool{}}
		r.states[h.Name] = s
	}
	s.hook, s.generation = h, generation
	for _, p := range paths {
		s.pending[p] = true
	}
	due := changedAt.Add(time.Duration(h.DebounceMs) * time.Millisecond)
	if s.timer != nil {
		if s.timer.Stop() {
			r.busy-- // the stopped timer's share
		} // else it fired already and finds itself replaced (timerID) when it gets the lock
		if s.due.After(due) {
			due = s.due
		}
	}
	s.due = due
	s.timerID++
	id := s.timerID
	r.busy++
	s.timer = time.AfterFunc(time.Until(due), func() { r.fire(s, id) })
}

// fire runs the hook when its debounce is over, unless a newer timer replaced this one or the
// hook is running (it fires again when that run ends).
func (r *Runner) fire(s *hookState, id int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id != s.timerID || s.running || len(s.pending) == 0 || r.closed {
		if id == s.timerID {
			s.timer = nil
		}
		r.busy--
		r.idle.Broadcast()
		return
	}
	s.timer = nil
	r.startLocked(s)
}

// startLocked starts a run with the pending paths; the caller's share of busy passes to the run.
func (r *Runner) startLocked(s *hookState) {
	paths := make([]string, 0, len(s.pending))
	for p := range s.pending {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	clear(s.pending)
	s.running = true
	h, gen := s.hook, s.generation
	go func() {
		rec := r.execute(h, paths, gen)
		fields := []any{"hook", h.Name, "layer", h.Layer, "action", h.Action, "generation", gen, "paths", paths, "durationMs", rec.DurationMs}
		if rec.ExitCode != nil {
			fields = append(fields, "exitCode", *rec.ExitCode)
		}
		for _, kv := range [][2]string{{"signal", rec.Signal}, {"error", rec.Error}, {"output", rec.Output}} {
			if kv[1] != "" {
				fields = append(fields, kv[0], kv[1])
			}
		}
		if rec.ExitCode != nil && *rec.ExitCode == 0 {
			r.log.Info("hook ran", fields...)
		} else {
			r.log.Warn("hook failed", fields...)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		s.running = false
		s.runs++
		s.lastRun = &rec
		if len(s.pending) > 0 && s.timer == nil && !r.closed {
			r.startLocked(s) // changes during the run: one more run, with this run's share
			return
		}
		r.busy--
		r.idle.Broadcast()
	}()
}

func (r *Runner) done() {
	r.mu.Lock()
	r.busy--
	r.idle.Broadcast()
	r.mu.Unlock()
}

// Idle waits until no change is being compared and no hook is pending or running.
func (r *Runner) Idle() {
	r.mu.Lock()
	for r.busy > 0 {
		r.idle.Wait()
	}
	r.mu.Unlock()
}

// Close drops pending runs and waits for running ones.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	for _, s := range r.states {
		if s.timer != nil && s.timer.Stop() {
			s.timer = nil
			r.busy--
		}
		clear(s.pending)
	}
	r.idle.Broadcast()
	r.mu.Unlock()
	r.Idle()
}

// Status is the hooks section of status.json.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{InForce: []HookStatus{}, Errors: append([]StatusErr{}, r.errs...)}
	for _, h := range r.inForce {
		hs := HookStatus{Name: h.Name, Layer: h.Layer, Paths: h.Paths, Action: h.Action}
		if s := r.states[h.Name]; s != nil {
			hs.Runs, hs.LastRun = s.runs, s.lastRun
		}
		st.InForce = append(st.InForce, hs)
	}
	return st
}

func (r *Runner) execute(h Hook, paths []string, generation uint64) RunRecord {
	started := time.Now()
	rec := RunRecord{At: started.UTC().Format(time.RFC3339Nano), Generation: generation, Paths: paths}
	finish := func() RunRecord {
		rec.DurationMs = time.Since(started).Milliseconds()
		return rec
	}
	switch h.Action {
	case Signal:
		if err := r.signal(h); err != nil {
			rec.Error = err.Error()
		} else {
			zero := 0
			rec.ExitCode, rec.Signal = &zero, h.SignalName
		}
		return finish()
	case Restart:
		// As root: restarting a unit is what the owner allowed (hooks.restart.units). "--" so
		// that no unit name is read as an option.
		r.command(&rec, h, []string{"systemctl", "restart", "--", h.Unit}, nil, nil)
		return finish()
	}
	cred, err := r.runAs()
	if err != nil {
		rec.Error = err.Error()
		return finish()
	}
	argv := slices.Clone(h.Argv)
	if h.AppendPaths {
		argv = append(argv, paths...)
	}
	env := []string{
		"PATH=" + safePath, "HOME=/", "LANG=C.UTF-8",
		"RECONTEXT_HOOK=" + h.Name, "RECONTEXT_LAYER=" + h.Layer,
		"RECONTEXT_GENERATION=" + strconv.FormatUint(generation, 10),
		"RECONTEXT_CHANGED_PATHS=" + strings.Join(paths, "\n"),
		"RECONTEXT_MOUNTPOINT=" + r.mountpoint,
	}
	r.command(&rec, h, argv, env, cred)
	return finish()
}

// runAs resolves the policy's run account; nil when it is the agent's own.
func (r *Runner) runAs() (*syscall.Credential, error) {
	u, err := user.Lookup(r.policy.RunUser)
	if err != nil {
		return nil, fmt.Errorf("hooks.run.user %s: %w", r.policy.RunUser, err)
	}
	gid := u.Gid
	if r.policy.RunGroup != "" {
		g, err := user.LookupGroup(r.policy.RunGroup)
		if err != nil {
			return nil, fmt.Errorf("hooks.run.group %s: %w", r.policy.RunGroup, err)
		}
		gid = g.Gid
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	g, err2 := strconv.ParseUint(gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("hooks.run.user %s: uid %s / gid %s not numeric", r.policy.RunUser, u.Uid, gid)
	}
	if int(uid) == os.Geteuid() && int(g) == os.Getegid() {
		return nil, nil
	}
	// No supplementary groups: the agent's (root's) must not come along.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(g), Groups: []uint32{}}, nil
}

func (r *Runner) command(rec *RunRecord, h Hook, argv, env []string, cred *syscall.Credential) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(h.TimeoutMs)*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	if env == nil {
		env = []string{"PATH=" + safePath, "LANG=C.UTF-8"}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	// The timeout kills the whole process group, not only the direct child.
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	tail := &tailBuffer{}
	cmd.Stdout, cmd.Stderr = tail, tail
	err := cmd.Run()
	rec.Output = strings.TrimRight(string(tail.buf), "\n ")
	var exit *exec.ExitError
	switch {
	case err == nil:
		zero := 0
		rec.ExitCode = &zero
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			rec.Signal = unix.SignalName(ws.Signal())
		} else {
			code := exit.ExitCode()
			rec.ExitCode = &code
		}
	default:
		rec.Error = err.Error()
	}
	if ctx.Err() != nil {
		rec.Error = fmt.Sprintf("killed after timeoutMs %d", h.TimeoutMs)
	}
}

// signal sends the hook's signal to the process its pidfile names. The pidfile is checked again
// here, after symlinks: a pidfile (or a link on its path) leading into the mount would let a
// layer choose the process.
func (r *Runner) signal(h Hook) error {
	real, err := filepath.EvalSymlinks(h.Pidfile)
	if err != nil {
		return err
	}
	if Within(r.mountpoint, real) {
		return fmt.Errorf("pidfile %s leads into the mount (%s)", h.Pidfile, real)
	}
	data, err := os.ReadFile(real)
	if err != nil {
		return err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return fmt.Errorf("%s holds no process id", h.Pidfile)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 1 || pid == os.Getpid() {
		return fmt.Errorf("%s holds no process id other than 1 and the agent's", h.Pidfile)
	}
	return unix.Kill(pid, unix.SignalNum(h.SignalName))
}

// tailBuffer keeps the last outputTailBytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > outputTailBytes {
		t.buf = slices.Clone(t.buf[len(t.buf)-outputTailBytes:])
	}
	return len(p), nil
}
