package httpfront

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// echoPool is a worker pool whose workers run concurrently, each answering a request with a
// body made of the request's X-N header: small, over minCompressSize, or over bufferSize with a
// flush (the writer goroutine and the spool).
type echoPool struct{}

func (echoPool) Limits() channel.Limits { return channel.Limits{} }

func (echoPool) Call(ctx context.Context, v *pool.Visit, call func(pool.Process) pool.Outcome) error {
	return call(echoWorker{&fakeFCGI{}}).Err
}

type echoWorker struct{ *fakeFCGI }

var xn = regexp.MustCompile(`HTTP_X_N";s:\d+:"(\d+)"`)

// echoBody is the body of request n.
func echoBody(n int) []byte {
	size := []int{100, 20 << 10, bufferSize + 300<<10}[n%3]
	tag := []byte(strconv.Itoa(n) + ",")
	return bytes.Repeat(tag, size/len(tag))
}

func (echoWorker) Exchange(p []byte, resp channel.Response) channel.Result {
	m := xn.FindSubmatch(p)
	if m == nil {
		return channel.Result{Err: fmt.Errorf("no X-N in the payload")}
	}
	n, _ := strconv.Atoi(string(m[1]))
	if err := resp.Head(200, []channel.Header{{Name: "Content-Type", Value: "text/plain"}}); err != nil {
		return channel.Result{Err: err}
	}
	body := echoBody(n)
	if n%3 == 2 {
		half := len(body) / 2
		if err := resp.Body(body[:half]); err != nil {
			return channel.Result{Err: err, ClientGone: true}
		}
		if err := resp.Flush(); err != nil {
			return channel.Result{Err: err, ClientGone: true}
		}
		body = body[half:]
	}
	if err := resp.Body(body); err != nil {
		return channel.Result{Err: err, ClientGone: true}
	}
	return channel.Result{}
}

// TestPooledBuffersStayWithTheirRequest: requests answered concurrently, on HTTP/1 and HTTP/2,
// compressed or not, some cut short by their client, each get their own body whole: what the
// responder, the request record, the compressor and the payload keep in pools is never seen by
// another request (run with -race: a buffer given back while in use is a race).
func TestPooledBuffersStayWithTheirRequest(t *testing.T) {
	for _, tc := range []struct {
		name        string
		http2, gzip bool
	}{{"http1", false, false}, {"http1-gzip", false, true}, {"http2", true, false}, {"http2-gzip", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var observed atomic.Int64
			opt := Options{Compression: true, ClientTimeout: 10 * time.Second, ResponseSpoolSize: 8 << 20,
				Observe: func(r *Record) { observed.Add(1) }}
			testOptions(t, &opt)
			h, err := New(opt, echoPool{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			ts := httptest.NewUnstartedServer(h)
			ts.EnableHTTP2 = tc.http2
			ts.StartTLS()
			defer ts.Close()
			client := ts.Client()
			const requests, conc = 90, 12
			var wg sync.WaitGroup
			var mu sync.Mutex
			var bad []string
			next := atomic.Int64{}
			for range conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := int(next.Add(1))
						if n > requests {
							return
						}
						ctx, cancel := context.WithCancel(context.Background())
						req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/app", nil)
						req.Header.Set("X-N", strconv.Itoa(n))
						if !tc.gzip {
							req.Header.Set("Accept-Encoding", "identity")
						}
						resp, err := client.Do(req)
						if err != nil {
							cancel()
							mu.Lock()
							bad = append(bad, fmt.Sprintf("request %d: %v", n, err))
							mu.Unlock()
							continue
						}
						if n%7 == 0 { // the client leaves mid-response
							io.CopyN(io.Discard, resp.Body, 50)
							cancel()
							resp.Body.Close()
							continue
						}
						got, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						cancel()
						if want := echoBody(n); err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want) {
							mu.Lock()
							bad = append(bad, fmt.Sprintf("request %d (proto %s): %d, %d bytes (%v); want 200 and its own %d bytes (starts %q)",
								n, resp.Proto, resp.StatusCode, len(got), err, len(want), got[:min(len(got), 20)]))
							mu.Unlock()
						}
						if tc.http2 && resp.ProtoMajor != 2 {
							mu.Lock()
							bad = append(bad, fmt.Sprintf("request %d over %s; want HTTP/2", n, resp.Proto))
							mu.Unlock()
						}
					}
				}()
			}
			wg.Wait()
			for _, b := range bad {
				t.Error(b)
			}
			ok := func() bool { return observed.Load() == requests }
			for deadline := time.Now().Add(10 * time.Second); !ok() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if !ok() {
				t.Errorf("%d requests recorded; want %d", observed.Load(), requests)
			}
		})
	}
}
