package integration

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
)

// TestLaravelHugeUpload: a 200 MB file through Laravel's "file" validation. askrd streams it to a
// temporary file, PHP never loads it, the app sees a valid upload with the right sha1, memory stays
// bounded and the file is gone afterwards.
func TestLaravelHugeUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB upload")
	}
	lvSkipWithoutPHP(t)
	s := lvStartConfig(t, `[server]
max_body_size = "256M"
[worker]
ini = """
upload_max_filesize = 256M
post_max_size = 256M
"""
`, "--workers", "1")
	pid, _ := s.send(nil, "GET", "/api/json", nil).json(t)["pid"].(float64)
	wpid := int(pid)
	askrdMem, workerMem := watchMemory(t, "askrd", s.cmd.Process.Pid), watchMemory(t, "worker", wpid)

	const size = 200 << 20
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	h := sha1.New()
	go func() {
		fw, err := mw.CreateFormFile("file", "big.bin")
		if err == nil {
			_, err = io.Copy(io.MultiWriter(fw, h), seeded(size, 2))
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", s.URL+"/api/upload", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("upload = %d: %.1000s", resp.StatusCode, body)
	}
	var got struct {
		Name  string `json:"name"`
		Size  int64  `json:"size"`
		SHA1  string `json:"sha1"`
		Valid bool   `json:"valid"`
		Peak  int64  `json:"peak_memory"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if want := hex.EncodeToString(h.Sum(nil)); got.SHA1 != want || got.Size != size || got.Name != "big.bin" || !got.Valid {
		t.Errorf("Laravel saw %+v; want big.bin, %d bytes, sha1 %s, valid", got, size, want)
	}
	// PHP never loads the file: its peak memory stays far below the file's size.
	if got.Peak <= 0 || got.Peak > 32<<20 {
		t.Errorf("PHP peak memory during the upload request: %d bytes; want (0, 32 MiB] for a %d MiB file", got.Peak, size>>20)
	}
	askrdMem.check(64 << 20)
	workerMem.check(64 << 20)
	s.noTempFiles()

	// A plain field named like the file: the "file" rule refuses it.
	var buf bytes.Buffer
	form := multipart.NewWriter(&buf)
	form.WriteField("file", "not a file")
	form.Close()
	r := s.send(nil, "POST", "/api/upload", buf.Bytes(), "Content-Type", form.FormDataContentType(), "Accept", "application/json")
	lvWant(t, "status of a non-file upload", r.status, 422)
}
