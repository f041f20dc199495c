package certificate

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// fileStamp is what a poll compares to see that a file changed: os.Stat follows symlinks, so a
// certbot live/ link switched to a new archive/ file changes the inode.
type fileStamp struct {
	mtime time.Time
	size  int64
	dev   uint64
	ino   uint64
}

// pairStamp stamps the cert and key files together.
type pairStamp struct{ cert, key fileStamp }

func stat(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s, nil
}

func statPair(cert, key string) (pairStamp, error) {
	c, err := stat(cert)
	if err != nil {
		return pairStamp{}, fmt.Errorf("tls.cert: %w", err)
	}
	k, err := stat(key)
	if err != nil {
		return pairStamp{}, fmt.Errorf("tls.key: %w", err)
	}
	return pairStamp{c, k}, nil
}

// loadPair reads the cert and key files, stamped as they were just before reading.
func loadPair(certFile, keyFile string) (pairStamp, *tls.Certificate, error) {
	stamp, err := statPair(certFile, keyFile)
	if err != nil {
		return stamp, nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return stamp, nil, fmt.Errorf("tls.cert %s and tls.key %s: %w", certFile, keyFile, err)
	}
	return stamp, &cert, nil
}

// replace loads the files (stamped stamp) and serves them from the next handshake on; on an
// error the certificate served so far stays. It reports whether a new certificate is served.
func (m *Manager) replace(stamp pairStamp) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, cert, err := loadPair(m.cert, m.key)
	m.stamp = stamp // a pair that fails is not tried again until a file changes again
	if err != nil {
		m.lastErr = err.Error()
		return false, err
	}
	m.lastErr = ""
	old := m.served.Load()
	if old != nil && len(old.Certificate) > 0 && string(old.Certificate[0]) == string(cert.Certificate[0]) {
		return false, nil
	}
	m.served.Store(cert)
	s := leafStatus(m.source, cert)
	m.log.Info("serving a new certificate from the [tls] files", "cert", m.cert, "names", strings.Join(s.Names, ","), "not_after", s.NotAfter.UTC().Format(time.RFC3339))
	return true, nil
}

// watch reads the files again whenever their stamp changes, until ctx ends. A pair that does not
// load (half written, a key of another certificate) is logged once, at WARN, and read again when
// a file changes again.
func (m *Manager) watch(ctx context.Context) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp, err := statPair(m.cert, m.key)
		m.mu.Lock()
		same := stamp == m.stamp
		m.mu.Unlock()
		if same {
			continue
		}
		if err == nil {
			_, err = m.replace(stamp)
		} else {
			m.mu.Lock()
			m.stamp, m.lastErr = stamp, err.Error()
			m.mu.Unlock()
		}
		if err != nil {
			m.log.Warn("the [tls] files changed but do not make a certificate; still serving the previous one", "err", err)
		}
	}
}
