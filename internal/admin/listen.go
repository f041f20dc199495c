package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInUse is ListenUnix's error for a socket another live process (another askrd) serves: it is
// left alone.
var ErrInUse = errors.New("another process serves this socket")

// ListenUnix listens on the Unix socket path: its directory is created (0755) if missing, a stale
// socket file (nobody answers on it) is replaced, a live one is left to its owner (ErrInUse), and
// anything else at path is an error. The socket is made mode 0666: the peer's credentials decide
// who is served (Serve with PeerCred). Closing the listener removes the file.
func ListenUnix(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := safeDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrInUse)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := os.Remove(path); err != nil { // stale: its askrd is gone
			return nil, err
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// safeDir refuses a socket directory that another account could change: a symbolic link, one
// owned by neither root nor askrd's user, or one others may write to (as sshd's StrictModes). In
// such a directory another user could put a socket of their own in askrd's place, or swap the
// socket for a link before askrd makes it mode 0666.
func safeDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory (a symbolic link is refused): put the admin socket in a directory of askrd's own", dir)
	case !ok:
		return fmt.Errorf("%s: no owner known", dir)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, neither root nor askrd's user: put the admin socket in a directory of askrd's own", dir, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s may be written by others (mode %04o): put the admin socket in a directory of askrd's own", dir, fi.Mode().Perm())
	}
	return nil
}

// peerUID is the uid of the process at the other end of c (SO_PEERCRED).
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, credErr
	}
	return int(cred.Uid), nil
}
