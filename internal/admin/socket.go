package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SocketName is the admin socket's name in the data dir.
const SocketName = "admin.sock"

// SocketPath returns the admin socket of dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// maxSocketPath is the longest unix socket path macOS takes (Linux: 107).
const maxSocketPath = 103

// ErrServing is Listen's error when another server answers on the socket.
var ErrServing = errors.New("another tranche server is serving this data directory")

// Listen creates the admin socket of dataDir and listens on it. The socket
// is the owner's only (mode 0600) from the moment it appears: it is bound
// in a private directory, made 0600 and then renamed into place, which
// also replaces the stale socket of a server that crashed. The data dir
// must be a directory of the current user that others cannot write. Closing
// the listener removes the socket. Returns ErrServing if a server answers
// on the socket already.
func Listen(dataDir string) (net.Listener, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	path := SocketPath(dir)
	if len(path)+4 > maxSocketPath { // +4: the private directory's path is longer
		return nil, fmt.Errorf("the admin socket %s would be longer than unix sockets allow (%d bytes): use a data directory with a shorter path", path, maxSocketPath)
	}
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("%s exists and is not a socket: remove it", path)
	default:
		if answers(path) {
			return nil, fmt.Errorf("%w (%s answers)", ErrServing, path)
		}
		// A crashed server's: the rename below replaces it.
	}
	tmp, err := os.MkdirTemp(dir, ".s") // 0700
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(tmp, "a"), Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // the path is renamed: Close removes the right one
	if err := os.Chmod(filepath.Join(tmp, "a"), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(filepath.Join(tmp, "a"), path); err != nil {
		ln.Close()
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &listener{UnixListener: ln, path: path, fi: fi}, nil
}

type listener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
}

// Close stops listening and removes the socket, unless another server has
// replaced it since.
func (l *listener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		if rerr := os.Remove(l.path); err == nil {
			err = rerr
		}
	}
	return err
}

// checkDir refuses a data dir another user owns or everyone may write:
// whoever can rename files in it can put a socket of theirs in our
// socket's place (Dial checks the socket's owner too).
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("the data directory %s is not a directory", dir)
	}
	if uid, ok := owner(fi); ok && uid != os.Getuid() {
		return fmt.Errorf("the data directory %s belongs to user %d, not to you (%d)", dir, uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("the data directory %s may be written by anyone (mode %v): chmod o-w it", dir, fi.Mode().Perm())
	}
	return nil
}

// answers reports whether a server accepts connections on the socket.
func answers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// refused reports whether a dial failed because nobody listens there: a
// stale socket, or none.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOENT)
}

// dialer connects to the socket at path, whatever address a request names.
func dialer(path string) func(ctx context.Context, _, _ string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}
