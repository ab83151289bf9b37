package union

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"recontext.dev/guest/agent/internal/layer"
)

// DefaultCacheTimeout is how long the kernel may keep entries, negative entries and attributes
// without asking. Long, because every swap invalidates exactly what it changed before it is
// announced; the timeout only bounds what a layer tree edited in place (against the rules) shows.
const DefaultCacheTimeout = time.Hour

// StatusDir and StatusFile are the union's own read-only metadata at the root of the mount.
const (
	StatusDir  = layer.Reserved
	StatusFile = "status.json"
)

// Fixed inode numbers: the root is 1 (FUSE's), the status directory and file follow; inode
// numbers the union hands out for paths and file versions start above them.
const (
	statusDirIno  = 2
	statusFileIno = 3
	firstIno      = 16
)

// Options configure a Union. Zero values take the documented defaults.
type Options struct {
	// CacheTimeout: entry, negative-entry and attribute timeout. Default DefaultCacheTimeout.
	CacheTimeout time.Duration
	// AllowOther lets users other than the mounting one in (root only). Default false.
	AllowOther bool
	// Status renders /.recontext/status.json. Default: an empty JSON object.
	Status func() []byte
	// Now is the clock for Stack.ChangedAt. Default time.Now.
	Now func() time.Time
	// Debug logs every FUSE request (go-fuse's debug output). Default false.
	Debug bool
}

// Change is one announced swap: the stack before and after, and what it cost.
type Change struct {
	Previous, Current *Stack
	Invalidated       int           // kernel cache entries dropped
	Took              time.Duration // from the swap to the announcement
	// InvalidateErr: computing the exact set failed (a layer tree unreadable); every entry the
	// kernel may hold was dropped instead.
	InvalidateErr error
}

// Union serves the current stack through FUSE. Swap is the only way to change what it shows.
type Union struct {
	opts       Options
	current    atomic.Pointer[Stack] // what new lookups resolve against
	announced  atomic.Pointer[Stack] // what the status file, logs and hooks have been told
	swapMu     sync.Mutex
	listeners  []func(Change)
	root       *dirNode
	server     *fuse.Server
	mountpoint string

	inoMu    sync.Mutex
	dirInos  map[string]uint64  // union path → inode number, stable while the path is a directory
	fileInos map[version]uint64 // inode number per file version (one inode per version: own page cache)
	nextIno  uint64

	openMu   sync.Mutex
	open     map[string]int // layer root → files open on it
	released map[string][]chan struct{}

	notified atomic.Uint64 // kernel invalidations sent, for tests and the status file
}

// New makes a union with the empty stack (generation 0). Mount serves it.
func New(opts Options) *Union {
	if opts.CacheTimeout == 0 {
		opts.CacheTimeout = DefaultCacheTimeout
	}
	if opts.Status == nil {
		opts.Status = func() []byte { return []byte("{}\n") }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	u := &Union{opts: opts, dirInos: map[string]uint64{"": fuse.FUSE_ROOT_ID}, fileInos: map[version]uint64{}, nextIno: firstIno,
		open: map[string]int{}, released: map[string][]chan struct{}{}}
	empty, _ := NewStack(nil, 0, opts.Now())
	u.current.Store(empty)
	u.announced.Store(empty)
	u.root = &dirNode{u: u, rel: ""}
	return u
}

// Current is the stack new lookups resolve against.
func (u *Union) Current() *Stack { return u.current.Load() }

// Announced is the stack whose swap has been announced (status, logs, hooks).
func (u *Union) Announced() *Stack { return u.announced.Load() }

// Notified is the number of kernel invalidations sent so far.
func (u *Union) Notified() uint64 { return u.notified.Load() }

// OnChange registers a listener, called after every swap's invalidation, in order, before Swap
// returns: a listener may read the previous stack's trees until it returns.
func (u *Union) OnChange(listener func(Change)) {
	u.swapMu.Lock()
	defer u.swapMu.Unlock()
	u.listeners = append(u.listeners, listener)
}

// Swap replaces the whole stack with layers, atomically: lookups that start after the pointer
// swap see the new stack; then every kernel cache entry that answers differently is invalidated;
// only then is the swap announced (Announced, listeners). Files opened before keep reading the
// version they opened. Invalid layers leave the stack unchanged.
func (u *Union) Swap(layers []layer.Layer) (Change, error) {
	u.swapMu.Lock()
	defer u.swapMu.Unlock()
	started := time.Now()
	previous := u.current.Load()
	next, err := NewStack(layers, previous.Generation+1, u.opts.Now())
	if err != nil {
		return Change{}, err
	}
	u.current.Store(next)
	change := Change{Previous: previous, Current: next}
	if u.server != nil {
		change.Invalidated, change.InvalidateErr = u.invalidate(previous, next)
	}
	u.announced.Store(next)
	change.Took = time.Since(started)
	for _, l := range u.listeners {
		l(change)
	}
	return change, nil
}

// invalidate drops the kernel's cached answers that differ between the stacks. The kernel makes
// this race-free against lookups in flight: an entry invalidation takes the directory's inode
// lock, which a lookup (or readdirplus) holds until its answer is in the dcache, so an answer
// computed from the previous stack is dropped right after it lands. Attribute replies that
// race an inode invalidation are discarded by the kernel's attr_version check.
func (u *Union) invalidate(previous, next *Stack) (int, error) {
	known := u.knownDirs()
	rels := make([]string, 0, len(known))
	for rel := range known {
		rels = append(rels, rel)
	}
	invs, err := Invalidations(previous, next, rels)
	if err != nil {
		invs = everything(known)
	}
	for _, inv := range invs {
		node := known[inv.Dir]
		if inv.Name != "" {
			node.NotifyEntry(inv.Name)
			u.notified.Add(1)
			continue
		}
		// Attributes only (offset -1). ENOENT: the kernel has no inode for it yet, but a lookup
		// may be about to create one with the previous attributes; dropping the entry from the
		// parent catches that (nothing is cached below an inode the kernel does not have).
		u.notified.Add(1)
		if node.NotifyContent(-1, 0) == syscall.ENOENT && inv.Dir != "" {
			known[parentOf(inv.Dir)].NotifyEntry(baseOf(inv.Dir))
			u.notified.Add(1)
		}
	}
	return len(invs), err
}

// everything is the fallback when the exact set cannot be computed: every known child and
// directory (negative entries stay until their timeout).
func everything(known map[string]*fs.Inode) []Invalidation {
	var out []Invalidation
	for rel, node := range known {
		out = append(out, Invalidation{Dir: rel})
		for name := range node.Children() {
			out = append(out, Invalidation{Dir: rel, Name: name})
		}
	}
	return out
}

// knownDirs are the directories the kernel may hold entries of: go-fuse's tree of inodes the
// kernel has looked up (and not forgotten), directories only, the status directory left out.
func (u *Union) knownDirs() map[string]*fs.Inode {
	out := map[string]*fs.Inode{}
	var walk func(rel string, node *fs.Inode)
	walk = func(rel string, node *fs.Inode) {
		out[rel] = node
		for name, child := range node.Children() {
			if !child.IsDir() || (rel == "" && name == StatusDir) {
				continue
			}
			walk(joinRel(rel, name), child)
		}
	}
	walk("", u.root.EmbeddedInode())
	return out
}

// Mount serves the union at mountpoint (an existing directory), read-only, until Unmount. Needs
// root (CAP_SYS_ADMIN): go-fuse mounts /dev/fuse itself, no fusermount, no libfuse.
func (u *Union) Mount(mountpoint string) error {
	timeout := u.opts.CacheTimeout
	opts := &fs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		NullPermissions: true, // show a layer's mode 000 as 000
		MountOptions: fuse.MountOptions{
			FsName:            "recontext-ffs",
			Name:              "recontext-ffs",
			AllowOther:        u.opts.AllowOther,
			DirectMountStrict: true,
			DirectMountFlags:  unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV,
			Options:           []string{"default_permissions"},
			Debug:             u.opts.Debug,
			// Listings without attributes: with READDIRPLUS every listing made the kernel ask for
			// (and go-fuse look up) each entry again, 6.4× overlayfs per warm readdir of 100
			// entries against 2× without (BenchmarkReaddirWarm); names and types are enough for
			// find and ls, and the entries a stat asks for stay in the dcache.
			DisableReadDirPlus: true,
		},
	}
	// A previous server of this mountpoint that died (killed, crashed) left its mount behind,
	// answering ENOTCONN: detach it, so restarts do not stack dead mounts under the live one.
	// statfs, not stat: the kernel answers a stat of the root from its attribute cache.
	var sfs unix.Statfs_t
	if err := unix.Statfs(mountpoint, &sfs); errors.Is(err, unix.ENOTCONN) {
		if err := unix.Unmount(mountpoint, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("mount %s: a dead mount is in the way and cannot be detached: %w", mountpoint, err)
		}
	}
	server, err := fs.Mount(mountpoint, u.root, opts)
	if err != nil {
		return fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	u.server, u.mountpoint = server, mountpoint
	// go-fuse opens /dev/fuse without O_CLOEXEC when it mounts itself: every hook command would
	// inherit the connection, and a hook running as nobody could answer the kernel's requests
	// for the union in our place. Close it on exec.
	if err := closeOnExecFuseDevice(); err != nil {
		u.Unmount()
		return fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return nil
}

// closeOnExecFuseDevice sets FD_CLOEXEC on every descriptor of this process open on /dev/fuse.
func closeOnExecFuseDevice() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	found := false
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || target != "/dev/fuse" {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return fmt.Errorf("close-on-exec for /dev/fuse (fd %d): %w", fd, err)
		}
		found = true
	}
	if !found {
		return errors.New("no /dev/fuse descriptor found to mark close-on-exec")
	}
	return nil
}

// Unmount unmounts (lazily when busy: a reader still inside keeps it until it leaves) and waits
// for the FUSE loops to end when the unmount was not lazy.
func (u *Union) Unmount() error {
	if u.server == nil {
		return nil
	}
	if err := u.server.Unmount(); err != nil {
		if derr := unix.Unmount(u.mountpoint, unix.MNT_DETACH); derr != nil {
			return fmt.Errorf("unmount %s: %v; lazily: %w", u.mountpoint, err, derr)
		}
	}
	return nil
}

// OpenFiles is the number of files open on a layer root (the union's handles).
func (u *Union) OpenFiles(root string) int {
	u.openMu.Lock()
	defer u.openMu.Unlock()
	return u.open[root]
}

// Released is closed once no file is open on root: wait for it before ejecting a medium whose
// layer left the stack (a lazily unmounted image keeps its drive busy until its last reader closes).
func (u *Union) Released(root string) <-chan struct{} {
	u.openMu.Lock()
	defer u.openMu.Unlock()
	ch := make(chan struct{})
	if u.open[root] == 0 {
		close(ch)
		return ch
	}
	u.released[root] = append(u.released[root], ch)
	return ch
}

func (u *Union) opened(root string) {
	u.openMu.Lock()
	u.open[root]++
	u.openMu.Unlock()
}

func (u *Union) closed(root string) {
	u.openMu.Lock()
	defer u.openMu.Unlock()
	if u.open[root]--; u.open[root] > 0 {
		return
	}
	delete(u.open, root)
	for _, ch := range u.released[root] {
		close(ch)
	}
	delete(u.released, root)
}

func (u *Union) dirIno(rel string) uint64 { return inoOf(u, u.dirInos, rel) }

func (u *Union) fileIno(key version) uint64 { return inoOf(u, u.fileInos, key) }

// inoOf returns the inode number of key in m, numbering it from the union's one counter the
// first time (directories and file versions share the number space).
func inoOf[K comparable](u *Union, m map[K]uint64, key K) uint64 {
	u.inoMu.Lock()
	defer u.inoMu.Unlock()
	ino, ok := m[key]
	if !ok {
		ino = u.nextIno
		u.nextIno++
		m[key] = ino
	}
	return ino
}

func (u *Union) forgetFile(key version, ino uint64) {
	u.inoMu.Lock()
	defer u.inoMu.Unlock()
	if u.fileInos[key] == ino {
		delete(u.fileInos, key)
	}
}

// ---- nodes

// dirNode is a union directory, bound to its path (not to a stack): lookups, listings and
// attributes resolve against the current stack, so a process whose working directory is inside
// the union sees a swap like everyone else.
type dirNode struct {
	fs.Inode
	u   *Union
	rel string
}

var (
	_ fs.NodeLookuper  = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeReaddirer = (*dirNode)(nil)
	_ fs.NodeStatfser  = (*dirNode)(nil)
)

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if d.rel == "" && name == StatusDir {
		attrOf(&out.Attr, statusDirStat())
		return d.NewInode(ctx, &statusDirNode{u: d.u}, fs.StableAttr{Mode: unix.S_IFDIR, Ino: statusDirIno}), 0
	}
	stack := d.u.current.Load()
	rel := joinRel(d.rel, name)
	e, err := stack.Resolve(rel)
	if err != nil {
		return nil, errnoOf(err)
	}
	if e == nil {
		return nil, syscall.ENOENT
	}
	attrOf(&out.Attr, &e.Stat)
	if e.Kind == Dir {
		return d.NewInode(ctx, &dirNode{u: d.u, rel: rel}, fs.StableAttr{Mode: unix.S_IFDIR, Ino: d.u.dirIno(rel)}), 0
	}
	key := versionOf(e)
	ino := d.u.fileIno(key)
	node := &fileNode{u: d.u, key: key, ino: ino, realPath: e.RealPath, root: stack.Layers[e.Layer].Root, stat: e.Stat}
	return d.NewInode(ctx, node, fs.StableAttr{Mode: e.Stat.Mode & unix.S_IFMT, Ino: ino}), 0
}

func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e, err := d.u.current.Load().Resolve(d.rel)
	if err != nil {
		return errnoOf(err)
	}
	switch {
	case e != nil && e.Kind == Dir:
		attrOf(&out.Attr, &e.Stat)
	case d.rel == "":
		attrOf(&out.Attr, emptyRootStat())
	default:
		return syscall.ESTALE // the path is no directory any more; a fresh lookup finds what it is
	}
	return 0
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	stack := d.u.current.Load()
	e, err := stack.Resolve(d.rel)
	if err != nil {
		return nil, errnoOf(err)
	}
	var entries []fuse.DirEntry
	if d.rel == "" {
		entries = append(entries, fuse.DirEntry{Name: StatusDir, Mode: unix.S_IFDIR, Ino: statusDirIno})
	}
	if e == nil || e.Kind != Dir {
		if d.rel == "" {
			return fs.NewListDirStream(entries), 0
		}
		return nil, syscall.ENOENT
	}
	names, err := stack.List(d.rel, e)
	if err != nil {
		return nil, errnoOf(err)
	}
	for _, name := range names {
		child, err := stack.Resolve(joinRel(d.rel, name))
		if err != nil {
			return nil, errnoOf(err)
		}
		if child != nil {
			entries = append(entries, fuse.DirEntry{Name: name, Mode: child.Stat.Mode & unix.S_IFMT})
		}
	}
	return fs.NewListDirStream(entries), 0
}

func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
	return 0
}

// fileNode is one version of a file or symlink: one real file of one layer tree. A changed
// file is a new node (a new inode), so its page cache never mixes two versions, and a file
// opened before a swap keeps reading the version it opened.
type fileNode struct {
	fs.Inode
	u        *Union
	key      version
	ino      uint64
	realPath string
	root     string
	stat     unix.Stat_t
}

var (
	_ fs.NodeGetattrer   = (*fileNode)(nil)
	_ fs.NodeOpener      = (*fileNode)(nil)
	_ fs.NodeReader      = (*fileNode)(nil)
	_ fs.NodeReleaser    = (*fileNode)(nil)
	_ fs.NodeReadlinker  = (*fileNode)(nil)
	_ fs.NodeOnForgetter = (*fileNode)(nil)
)

type fileHandle struct {
	fd   int
	root string
}

const writeFlags = unix.O_WRONLY | unix.O_RDWR | unix.O_TRUNC | unix.O_CREAT | unix.O_APPEND

func (f *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	attrOf(&out.Attr, &f.stat)
	return 0
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 {
		return nil, 0, syscall.EROFS
	}
	fd, err := unix.Open(f.realPath, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, errnoOf(err)
	}
	// The inode promises one version: a real file replaced under the layer (a directory layer
	// edited in place) must not fill this inode's page cache with other bytes.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != f.stat.Dev || st.Ino != f.stat.Ino || st.Size != f.stat.Size || st.Mtim != f.stat.Mtim {
		unix.Close(fd)
		return nil, 0, syscall.ESTALE
	}
	f.u.opened(f.root)
	return &fileHandle{fd: fd, root: f.root}, fuse.FOPEN_KEEP_CACHE, 0
}

func (f *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*fileHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	n, err := unix.Pread(h.fd, dest, off)
	if err != nil {
		return nil, errnoOf(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *fileNode) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if h, ok := fh.(*fileHandle); ok {
		unix.Close(h.fd)
		f.u.closed(h.root)
	}
	return 0
}

func (f *fileNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := os.Readlink(f.realPath)
	if err != nil {
		return nil, errnoOf(err)
	}
	return []byte(target), 0
}

func (f *fileNode) OnForget() { f.u.forgetFile(f.key, f.ino) }

// statusDirNode is /.recontext: the union's own metadata.
type statusDirNode struct {
	fs.Inode
	u *Union
}

func (s *statusDirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name != StatusFile {
		return nil, syscall.ENOENT
	}
	statusAttr(s.u, &out.Attr)
	out.SetAttrTimeout(time.Nanosecond) // it changes with every swap and hook run
	return s.NewInode(ctx, &statusFileNode{u: s.u}, fs.StableAttr{Mode: unix.S_IFREG, Ino: statusFileIno}), 0
}

func (s *statusDirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	attrOf(&out.Attr, statusDirStat())
	return 0
}

func (s *statusDirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream([]fuse.DirEntry{{Name: StatusFile, Mode: unix.S_IFREG, Ino: statusFileIno}}), 0
}

// statusFileNode is /.recontext/status.json: rendered at open, read without the page cache.
type statusFileNode struct {
	fs.Inode
	u *Union
}

type statusHandle struct{ data []byte }

func (s *statusFileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	statusAttr(s.u, &out.Attr)
	out.SetTimeout(time.Nanosecond)
	return 0
}

func (s *statusFileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 {
		return nil, 0, syscall.EROFS
	}
	return &statusHandle{data: s.u.opts.Status()}, fuse.FOPEN_DIRECT_IO, 0
}

func (s *statusFileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*statusHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(h.data[off:min(int64(len(h.data)), off+int64(len(dest)))]), 0
}

// ---- attributes

func attrOf(out *fuse.Attr, st *unix.Stat_t) {
	out.Mode = st.Mode
	out.Nlink = uint32(st.Nlink)
	out.Uid, out.Gid = st.Uid, st.Gid
	out.Size = uint64(st.Size)
	out.Blocks = uint64(st.Blocks)
	out.Blksize = uint32(st.Blksize)
	out.Atime, out.Atimensec = uint64(st.Atim.Sec), uint32(st.Atim.Nsec)
	out.Mtime, out.Mtimensec = uint64(st.Mtim.Sec), uint32(st.Mtim.Nsec)
	out.Ctime, out.Ctimensec = uint64(st.Ctim.Sec), uint32(st.Ctim.Nsec)
}

func syntheticDir(mode uint32, t time.Time) *unix.Stat_t {
	ts := unix.NsecToTimespec(t.UnixNano())
	return &unix.Stat_t{Mode: unix.S_IFDIR | mode, Nlink: 2, Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Atim: ts, Mtim: ts, Ctim: ts}
}

// The root of an empty stack and the status directory: fixed times, so their attributes never
// change and the kernel may keep them.
func emptyRootStat() *unix.Stat_t { return syntheticDir(0o755, time.Unix(0, 0)) }
func statusDirStat() *unix.Stat_t { return syntheticDir(0o555, time.Unix(0, 0)) }

func statusAttr(u *Union, out *fuse.Attr) {
	stack := u.announced.Load()
	ts := unix.NsecToTimespec(stack.ChangedAt.UnixNano())
	st := unix.Stat_t{Mode: unix.S_IFREG | 0o600, Nlink: 1, Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Size: int64(len(u.opts.Status())), Atim: ts, Mtim: ts, Ctim: ts}
	attrOf(out, &st)
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}
