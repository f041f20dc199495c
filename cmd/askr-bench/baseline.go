package main

// The askrd of an earlier commit (-before), built from git and measured on hello beside today's,
// so that the report compares askrd's CPU per request in one run (issue 19).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildBefore builds the askrd of commit -before in tmp/before: its tree from `git archive`, `go
// build`, and beside it the extension (today's build/ext/askr.so when ext/askr is the same as in
// the commit, else the commit's own, built with its Makefile). It returns that tree, or why it
// could not.
func (b *bench) buildBefore() (tree, why string) {
	commit := b.cfg.before
	for _, tool := range []string{"git", "go", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", tool + " not found"
		}
	}
	tree = filepath.Join(b.tmp, "before")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", err.Error()
	}
	logf("hello: building the askrd of commit %s in %s", commit, tree)
	archive := exec.Command("git", "-C", b.repo, "archive", commit)
	untar := exec.Command("tar", "-x", "-C", tree)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err.Error()
	}
	untar.Stdin = pipe
	var archiveErr strings.Builder
	archive.Stderr = &archiveErr
	if err := archive.Start(); err != nil {
		return "", "git archive: " + err.Error()
	}
	untarOut, untarErr := untar.CombinedOutput()
	if err := archive.Wait(); err != nil {
		return "", fmt.Sprintf("git archive %s: %v %s", commit, err, strings.TrimSpace(archiveErr.String()))
	}
	if untarErr != nil {
		return "", fmt.Sprintf("tar: %v %s", untarErr, untarOut)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X github.com/askr-php/askr/internal/version.Version="+commit, "-o", "bin/askrd-before", "./cmd/askrd")
	build.Dir = tree
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("go build: %v\n%s", err, tail(string(out), 10))
	}
	// askrd finds the extension at ../build/ext/askr.so from its binary (phpext.Candidates).
	so := filepath.Join(b.repo, "build", "ext", "askr.so")
	same := exec.Command("git", "-C", b.repo, "diff", "--quiet", commit, "--", "ext/askr").Run() == nil
	if _, err := os.Stat(so); err == nil && same {
		data, err := os.ReadFile(so)
		if err == nil {
			err = os.MkdirAll(filepath.Join(tree, "build", "ext"), 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(tree, "build", "ext", "askr.so"), data, 0o644)
		}
		if err != nil {
			return "", err.Error()
		}
		return tree, ""
	}
	ext := exec.Command("make", "-C", tree, "--no-print-directory", "ext")
	if out, err := ext.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("make ext (ext/askr changed since): %v\n%s", err, tail(string(out), 10))
	}
	return tree, ""
}

// helloBefore measures hello on the askrd of commit -before with that commit's hello worker, for
// the main table and the CPU table; a commit that cannot be built is a note, not an error.
func (b *bench) helloBefore(tree, why string) error {
	label := "askrd " + b.cfg.before
	if why != "" {
		logf("SKIPPING hello on the askrd of %s: %s", b.cfg.before, why)
		b.res.beforeNotes = append(b.res.beforeNotes, fmt.Sprintf("- **hello / %s**: skipped, it could not be built: %s", label, firstLine(why)))
		return nil
	}
	s, err := b.startAskrd("hello-before", askrdOpts{bin: filepath.Join(tree, "bin", "askrd-before"), root: filepath.Join(tree, "examples/hello/public"), script: filepath.Join(tree, "examples/hello-worker.php")})
	if err != nil {
		return err
	}
	s.label = label
	b.res.beforeLabel = label
	return b.measureHello(s)
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
