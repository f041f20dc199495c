package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// MariaDB is a private MariaDB server: its data directory is in the caller's directory and it
// listens only on a Unix socket there (no TCP).
type MariaDB struct {
	Socket string
	Proc   *Proc
}

// StartMariaDB initialises a data directory in dir with mariadb-install-db, starts mariadbd on it
// and waits until it accepts connections. root@localhost authenticates by the Unix socket's peer.
// The caller stops it (Stop).
func StartMariaDB(dir string) (*MariaDB, error) {
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"} // mariadbd refuses to run as root without it
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--skip-test-db", "--auth-root-authentication-method=socket"}, asRoot...)
	if out, err := exec.CommandContext(ctx, "mariadb-install-db", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	m := &MariaDB{Socket: filepath.Join(dir, "mysqld.sock")}
	errLog := filepath.Join(dir, "mysqld.err")
	args = append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + m.Socket, "--skip-networking",
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--log-error=" + errLog,
		"--innodb-buffer-pool-size=64M",
		"--innodb-use-native-aio=0", // no io_uring or libaio: containers may forbid them
	}, asRoot...)
	p, err := Start(Cmd{Name: "mariadbd", Path: "/usr/sbin/mariadbd", Args: args, Logs: []string{errLog}})
	if err != nil {
		return nil, err
	}
	m.Proc = p
	if err := p.WaitUntil("accepting connections on "+m.Socket, time.Minute, func() bool { return Dialable("unix", m.Socket) }); err != nil {
		p.Stop(10 * time.Second)
		return nil, err
	}
	return m, nil
}

// Exec runs SQL statements as root.
func (m *MariaDB) Exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--socket="+m.Socket, "-u", "root", "-e", sql).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadb -e %q: %v\n%s", sql, err, out)
	}
	return nil
}

// Stop stops mariadbd (SIGTERM, then SIGKILL after grace).
func (m *MariaDB) Stop(grace time.Duration) error { return m.Proc.Stop(grace) }

// MariaDBVersion is mariadbd's version ("10.11.19-MariaDB-0+deb12u1"), or "" if it cannot be read.
func MariaDBVersion() string {
	out, err := exec.Command("/usr/sbin/mariadbd", "--version").Output()
	if f := strings.Fields(string(out)); err == nil && len(f) >= 3 {
		return f[2]
	}
	return ""
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
