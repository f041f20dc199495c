package integration

// The WordPress acceptance harness: Debian's wordpress package (6.1, in /usr/share/wordpress) on a
// private MariaDB, driven over HTTP from the install wizard to a media upload. The scenario
// (runWordPressScenario) knows nothing of the server under test; TestWordPressUnderPHPFPM runs it
// behind nginx + php-fpm, the reference askrd's per-request mode has to match. The servers come
// from internal/harness (shared with cmd/askr-bench); startMariaDB and startNginxFPM (any document
// root) wrap it for the tests and serve other tests too.
//
// Nothing here touches the system's services: MariaDB, nginx and php-fpm run as children of the test
// with their data, sockets, pid files and logs in temp dirs, and listen only on Unix sockets and
// loopback. What a site leaves outside the temp dirs — /etc/wordpress/config-<host>.php and the
// uploaded files under /var/lib/wordpress/wp-content/uploads — is removed when the test ends.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

// Debian's WordPress (internal/harness).
const (
	wpRoot       = harness.WordPressRoot
	wpContentDir = harness.WordPressContent
)

// wpContentAlias is the URL mapping Debian's WordPress needs besides its document root.
var wpContentAlias = harness.WordPressAlias

// needFiles skips the test unless every path exists (in CI, where make deps-wordpress has run, it
// fails instead).
func needFiles(t testing.TB, why string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s: %v (make deps-wordpress installs it)", why, err)
			}
			t.Skipf("%s: %v (run make deps-wordpress)", why, err)
		}
	}
}

// wpSkipWithoutPackages skips the test unless Debian's WordPress, MariaDB and PHP's MySQL driver
// are installed and this process may write /etc/wordpress (it runs as root).
func wpSkipWithoutPackages(t testing.TB) {
	t.Helper()
	needFiles(t, "WordPress acceptance needs Debian's wordpress, its default theme, mariadb-server and php8.2-mysql",
		harness.WordPressFiles...)
	if err := harness.WordPressMissing(); err != nil { // /etc/wordpress not writable: not root
		if os.Getenv("CI") != "" {
			t.Fatalf("the WordPress tests: %v", err)
		}
		t.Skipf("the WordPress tests: %v", err)
	}
}

// stopWhenDone stops p when the test ends, and shows its output and logs if the test failed.
func stopWhenDone(t testing.TB, p *harness.Proc) {
	t.Cleanup(func() {
		if err := p.Stop(20 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Log(p.Report())
		}
	})
}

// startHelperCmd starts path with args as a server process of the test (harness.Start) with the
// credentials cred (nil: the test's own), stopped when the test ends.
func startHelperCmd(t testing.TB, name string, logs []string, cred *syscall.Credential, path string, args ...string) *harness.Proc {
	t.Helper()
	p, err := harness.Start(harness.Cmd{Name: name, Path: path, Args: args, Cred: cred, Logs: logs})
	if err != nil {
		t.Fatal(err)
	}
	stopWhenDone(t, p)
	return p
}

// waitUntil polls cond until it holds, failing the test if p exits first or timeout passes.
func waitUntil(t testing.TB, p *harness.Proc, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if err := p.WaitUntil(what, timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// mariaDB is a private MariaDB server (harness.StartMariaDB) in a temp dir of the test.
type mariaDB struct {
	*harness.MariaDB
}

// startMariaDB starts a private MariaDB, stopped when the test ends.
func startMariaDB(t testing.TB) *mariaDB {
	t.Helper()
	m, err := harness.StartMariaDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopWhenDone(t, m.Proc)
	return &mariaDB{m}
}

// exec runs SQL statements as root.
func (m *mariaDB) exec(t testing.TB, sql string) {
	t.Helper()
	if err := m.Exec(sql); err != nil {
		t.Fatal(err)
	}
}

// randomHex returns n random bytes in hex.
func randomHex(_ testing.TB, n int) string { return harness.RandomHex(n) }

// setupWordPress prepares one WordPress site for this test (harness.NewWordPressSite on a private
// MariaDB; its config is removed when the test ends). The returned host name is unique and
// resolves nowhere; requests must send it as their Host header. The site is not installed yet:
// runWordPressScenario runs the wizard.
func setupWordPress(t testing.TB) (host string) {
	t.Helper()
	wpSkipWithoutPackages(t)
	db := startMariaDB(t)
	site, err := harness.NewWordPressSite(db.MariaDB, "askr-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Remove() })
	return site.Host
}

// startNginxFPM serves root with nginx and php-fpm (harness.StartNginxFPM) run as the test's own
// children in a temp dir: the usual per-request site (try_files $uri $uri/ /index.php?$args,
// PATH_INFO split after ".php"), 4 php-fpm workers, server_name localhost, access and info logs
// shown if the test fails. Aliases serve their URLs as static files (never PHP). Both stop when
// the test ends. It returns the base URL, "http://127.0.0.1:port".
func startNginxFPM(t testing.TB, root string, aliases ...harness.Alias) (baseURL string) {
	t.Helper()
	needFiles(t, "the php-fpm comparison needs nginx-light and php8.2-fpm", harness.NginxPath, harness.PHPFPMPath)
	s, err := harness.StartNginxFPM(harness.NginxFPMOptions{Dir: t.TempDir(), Root: root, Aliases: aliases,
		Routing: harness.Classic, Workers: 4, ServerName: "localhost", Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	stopWhenDone(t, s.FPM)
	stopWhenDone(t, s.Nginx)
	return s.URL
}

// wpClient drives one WordPress site as a browser would: a cookie jar, redirects not followed,
// and every connection going to the server under test whatever host a URL names — WordPress
// builds its URLs from the Host the requests send, a name that resolves nowhere.
type wpClient struct {
	site string // WordPress's URL: http://<host>:<port>
	hc   *http.Client
}

type wpResponse struct {
	status int
	header http.Header
	body   []byte
}

func newWPClient(t *testing.T, baseURL, host string) *wpClient {
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatalf("base URL %q: %v", baseURL, err)
	}
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, u.Host)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &wpClient{
		site: "http://" + host + ":" + u.Port(),
		hc: &http.Client{
			Jar:           jar,
			Transport:     tr,
			Timeout:       60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// url makes a site-relative path ("/wp-login.php") absolute; absolute URLs stay as they are.
func (c *wpClient) url(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return c.site + path
}

// do sends a request; header holds name, value pairs.
func (c *wpClient) do(t *testing.T, method, path string, body io.Reader, header ...string) wpResponse {
	t.Helper()
	req, err := http.NewRequest(method, c.url(path), body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return wpResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func (c *wpClient) get(t *testing.T, path string, header ...string) wpResponse {
	t.Helper()
	return c.do(t, http.MethodGet, path, nil, header...)
}

func (c *wpClient) postForm(t *testing.T, path string, form url.Values) wpResponse {
	t.Helper()
	return c.do(t, http.MethodPost, path, strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

// cookies returns the names of the cookies the jar would send with a request for path.
func (c *wpClient) cookies(path string) []string {
	u, _ := url.Parse(c.url(path))
	var names []string
	for _, k := range c.hc.Jar.Cookies(u) {
		names = append(names, k.Name)
	}
	return names
}

// hasCookie reports whether the jar would send a cookie whose name matches re with a request for path.
func (c *wpClient) hasCookie(path string, re *regexp.Regexp) bool {
	for _, n := range c.cookies(path) {
		if re.MatchString(n) {
			return true
		}
	}
	return false
}

// wantStatus fails the test unless r has the status.
func (r wpResponse) wantStatus(t *testing.T, what string, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; Location %q; body:\n%.3000s", what, r.status, status, r.header.Get("Location"), r.body)
	}
}

// wantBody fails the test unless the body contains every string.
func (r wpResponse) wantBody(t *testing.T, what string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !bytes.Contains(r.body, []byte(s)) {
			t.Fatalf("%s: the body lacks %q:\n%.3000s", what, s, r.body)
		}
	}
}

// decode unmarshals a JSON body.
func (r wpResponse) decode(t *testing.T, what string, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s: body is not the JSON expected (%v):\n%.3000s", what, err, r.body)
	}
}

// match returns the first submatch of re in the body, failing the test if there is none.
func (r wpResponse) match(t *testing.T, what string, re *regexp.Regexp) string {
	t.Helper()
	m := re.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("%s: %v not found in the body:\n%.3000s", what, re, r.body)
	}
	return string(m[1])
}

var (
	wpFormNonce   = regexp.MustCompile(`name="_wpnonce" value="([0-9a-f]+)"`)
	wpUploadNonce = regexp.MustCompile(`"_wpnonce":"([0-9a-f]+)"`) // plupload's multipart_params on media-new.php
	wpRESTLink    = regexp.MustCompile(`<([^>]+)>; rel="https://api\.w\.org/"`)
	wpNonce       = regexp.MustCompile(`^[0-9a-f]{10}$`)
	// WordPress's cookies: the login test cookie, the auth cookie (wp-admin only, with the password
	// fragment), the logged-in cookie (the whole site).
	wpTestCookie     = regexp.MustCompile(`^wordpress_test_cookie$`)
	wpAuthCookie     = regexp.MustCompile(`^wordpress_[0-9a-f]{32}$`)
	wpLoggedInCookie = regexp.MustCompile(`^wordpress_logged_in_[0-9a-f]{32}$`)
)

// wpTestPNG is a small PNG to upload: smaller than every intermediate size, so WordPress keeps
// only the original.
func wpTestPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range 64 {
		img.Set(i%8, i/8, color.RGBA{uint8(i * 4), 0x80, uint8(255 - i*4), 0xff})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// wpCleanUploads removes, when the test ends, the files under the uploads directory whose names
// start with prefix and the directories (uploads/YYYY/MM) that did not exist before and are empty.
func wpCleanUploads(t *testing.T, prefix string) {
	uploads := filepath.Join(wpContentDir, "uploads")
	existed := map[string]bool{}
	filepath.WalkDir(uploads, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			existed[p] = true
		}
		return nil
	})
	t.Cleanup(func() {
		var dirs []string
		filepath.WalkDir(uploads, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
			case d.IsDir() && !existed[p]:
				dirs = append(dirs, p)
			case !d.IsDir() && strings.HasPrefix(d.Name(), prefix):
				if err := os.Remove(p); err != nil {
					t.Errorf("remove the uploaded %s: %v", p, err)
				}
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // children first
		for _, d := range dirs {
			os.Remove(d) // only if empty: another site may have put files there meanwhile
		}
	})
}

// runWordPressScenario installs the WordPress site set up for host (setupWordPress) through its
// install wizard and uses it as a person with a browser would, over HTTP to baseURL: log in, switch
// to pretty permalinks, publish a post, see it on the front page and under its permalink, read it
// back through the REST API under /index.php/… (PATH_INFO), upload a PNG to the media library and
// download it again. Each step is a subtest; the first that fails ends the scenario.
func runWordPressScenario(t *testing.T, baseURL, host string) {
	c := newWPClient(t, baseURL, host)
	token := randomHex(t, 4)
	const user = "askr"
	password := "Pw-" + randomHex(t, 12)
	title := "askr acceptance post " + token
	var restRoot string // the REST API's root URL, as WordPress advertises it
	var post struct {   // the post published
		ID   int    `json:"id"`
		Link string `json:"link"`
	}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"NotInstalledRedirectsToWizard", func(t *testing.T) {
			r := c.get(t, "/")
			r.wantStatus(t, "GET / before the install", http.StatusFound)
			if loc := r.header.Get("Location"); loc != c.site+"/wp-admin/install.php" {
				t.Fatalf("GET / before the install: Location %q, want %s/wp-admin/install.php", loc, c.site)
			}
		}},
		{"InstallWizard", func(t *testing.T) {
			r := c.get(t, "/wp-admin/install.php")
			r.wantStatus(t, "GET install.php", http.StatusOK)
			r.wantBody(t, "GET install.php", `name="weblog_title"`, `name="admin_password"`)
			r = c.postForm(t, "/wp-admin/install.php?step=2", url.Values{
				"weblog_title":    {"askr WordPress " + token},
				"user_name":       {user},
				"admin_password":  {password},
				"admin_password2": {password},
				"admin_email":     {"askr-test@example.org"},
				"blog_public":     {"0"},
				"language":        {""},
				"Submit":          {"Install WordPress"},
			})
			r.wantStatus(t, "POST install.php?step=2", http.StatusOK)
			r.wantBody(t, "POST install.php?step=2", "<h1>Success!</h1>", "<td>"+user+"</td>")
			r = c.get(t, "/wp-admin/install.php")
			r.wantBody(t, "install.php once installed", "Already Installed")
		}},
		{"Login", func(t *testing.T) {
			r := c.get(t, "/wp-login.php")
			r.wantStatus(t, "GET wp-login.php", http.StatusOK)
			r.wantBody(t, "GET wp-login.php", `name="log"`, `name="pwd"`)
			if !c.hasCookie("/", wpTestCookie) {
				t.Fatalf("GET wp-login.php set no wordpress_test_cookie: %v", r.header["Set-Cookie"])
			}
			login := url.Values{"log": {user}, "pwd": {"wrong"}, "wp-submit": {"Log In"},
				"redirect_to": {c.site + "/wp-admin/"}, "testcookie": {"1"}}
			r = c.postForm(t, "/wp-login.php", login)
			r.wantStatus(t, "log in with a wrong password", http.StatusOK)
			r.wantBody(t, "log in with a wrong password", `id="login_error"`)

			login.Set("pwd", password)
			r = c.postForm(t, "/wp-login.php", login)
			r.wantStatus(t, "log in", http.StatusFound)
			if loc := r.header.Get("Location"); loc != c.site+"/wp-admin/" {
				t.Fatalf("log in: Location %q, want %s/wp-admin/", loc, c.site)
			}
			if !c.hasCookie("/wp-admin/", wpAuthCookie) || !c.hasCookie("/", wpLoggedInCookie) || c.hasCookie("/", wpAuthCookie) {
				t.Fatalf("log in: cookies for /wp-admin/ %q, for / %q; want the auth cookie for /wp-admin/ only, the logged-in cookie for both; Set-Cookie: %q",
					c.cookies("/wp-admin/"), c.cookies("/"), r.header["Set-Cookie"])
			}
			r = c.get(t, "/wp-admin/")
			r.wantStatus(t, "GET /wp-admin/ logged in", http.StatusOK)
			r.wantBody(t, "GET /wp-admin/ logged in", "<h1>Dashboard</h1>")
		}},
		{"PrettyPermalinks", func(t *testing.T) {
			r := c.get(t, "/wp-admin/options-permalink.php")
			r.wantStatus(t, "GET options-permalink.php", http.StatusOK)
			nonce := r.match(t, "GET options-permalink.php", wpFormNonce)
			r = c.postForm(t, "/wp-admin/options-permalink.php", url.Values{
				"_wpnonce":            {nonce},
				"_wp_http_referer":    {"/wp-admin/options-permalink.php"},
				"selection":           {"custom"},
				"permalink_structure": {"/%postname%/"},
				"category_base":       {""},
				"tag_base":            {""},
				"submit":              {"Save Changes"},
			})
			r.wantStatus(t, "save the permalink structure", http.StatusFound)
			if loc := r.header.Get("Location"); !strings.Contains(loc, "settings-updated=true") {
				t.Fatalf("save the permalink structure: Location %q, want …settings-updated=true", loc)
			}
		}},
		{"PublishPostThroughREST", func(t *testing.T) {
			// The REST root as WordPress advertises it: /wp-json/ with pretty permalinks,
			// /index.php/wp-json/ if WordPress decided the server cannot rewrite URLs.
			r := c.get(t, "/")
			r.wantStatus(t, "GET /", http.StatusOK)
			m := wpRESTLink.FindStringSubmatch(strings.Join(r.header.Values("Link"), ", "))
			if m == nil {
				t.Fatalf("GET /: no Link rel=https://api.w.org/ header: %v", r.header["Link"])
			}
			restRoot = m[1]

			r = c.get(t, "/wp-admin/admin-ajax.php?action=rest-nonce")
			r.wantStatus(t, "GET admin-ajax.php?action=rest-nonce", http.StatusOK)
			nonce := strings.TrimSpace(string(r.body))
			if !wpNonce.MatchString(nonce) {
				t.Fatalf("admin-ajax.php?action=rest-nonce answered %q, want a nonce", nonce)
			}
			body, _ := json.Marshal(map[string]string{
				"title":   title,
				"content": "<!-- wp:paragraph --><p>Published over HTTP by askr's acceptance test " + token + ".</p><!-- /wp:paragraph -->",
				"status":  "publish",
			})
			// Cookie authentication needs the wp_rest nonce: without it the request is anonymous.
			r = c.do(t, http.MethodPost, restRoot+"wp/v2/posts", bytes.NewReader(body), "Content-Type", "application/json")
			r.wantStatus(t, "POST wp/v2/posts without a nonce", http.StatusUnauthorized)
			r = c.do(t, http.MethodPost, restRoot+"wp/v2/posts", bytes.NewReader(body),
				"Content-Type", "application/json", "X-WP-Nonce", nonce)
			r.wantStatus(t, "POST wp/v2/posts", http.StatusCreated)
			r.decode(t, "POST wp/v2/posts", &post)
			if post.ID == 0 || !strings.HasPrefix(post.Link, c.site+"/") {
				t.Fatalf("POST wp/v2/posts: id %d, link %q; want a post under %s", post.ID, post.Link, c.site)
			}
		}},
		{"FrontPageShowsPost", func(t *testing.T) {
			r := c.get(t, "/")
			r.wantStatus(t, "GET /", http.StatusOK)
			r.wantBody(t, "GET /", title, "askr WordPress "+token)
			// The permalink (/<slug>/) exists only for index.php: try_files routes it there.
			anon := newWPClient(t, baseURL, host)
			r = anon.get(t, post.Link)
			r.wantStatus(t, "GET "+post.Link, http.StatusOK)
			r.wantBody(t, "GET "+post.Link, title, "Published over HTTP by askr&#8217;s acceptance test "+token)
			r = anon.get(t, "/no-such-page-"+token+"/")
			r.wantStatus(t, "GET an unknown permalink", http.StatusNotFound)
		}},
		{"RESTThroughPathInfo", func(t *testing.T) {
			// /index.php/wp-json/…: the script is /index.php, PATH_INFO the rest.
			r := newWPClient(t, baseURL, host).get(t, fmt.Sprintf("/index.php/wp-json/wp/v2/posts/%d", post.ID))
			r.wantStatus(t, "GET /index.php/wp-json/wp/v2/posts/ID", http.StatusOK)
			var got struct {
				ID    int `json:"id"`
				Title struct {
					Rendered string `json:"rendered"`
				} `json:"title"`
			}
			r.decode(t, "GET /index.php/wp-json/wp/v2/posts/ID", &got)
			if got.ID != post.ID || got.Title.Rendered != title {
				t.Fatalf("GET /index.php/wp-json/wp/v2/posts/%d: id %d, title %q; want %d, %q", post.ID, got.ID, got.Title.Rendered, post.ID, title)
			}
		}},
		{"MediaUpload", func(t *testing.T) {
			r := c.get(t, "/wp-admin/media-new.php")
			r.wantStatus(t, "GET media-new.php", http.StatusOK)
			nonce := r.match(t, "GET media-new.php", wpUploadNonce)

			name := "askr-test-" + token + ".png"
			wpCleanUploads(t, "askr-test-"+token)
			img := wpTestPNG(t)
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			for _, f := range [][2]string{{"name", name}, {"action", "upload-attachment"}, {"_wpnonce", nonce}} {
				mw.WriteField(f[0], f[1])
			}
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="async-upload"; filename="`+name+`"`)
			h.Set("Content-Type", "image/png")
			pw, _ := mw.CreatePart(h)
			pw.Write(img)
			mw.Close()
			// What the media library's uploader (plupload) sends.
			r = c.do(t, http.MethodPost, "/wp-admin/async-upload.php", &body, "Content-Type", mw.FormDataContentType())
			r.wantStatus(t, "POST async-upload.php", http.StatusOK)
			var up struct {
				Success bool `json:"success"`
				Data    struct {
					ID       int    `json:"id"`
					URL      string `json:"url"`
					Mime     string `json:"mime"`
					Filename string `json:"filename"`
					Message  string `json:"message"`
				} `json:"data"`
			}
			r.decode(t, "POST async-upload.php", &up)
			if !up.Success || up.Data.ID == 0 || up.Data.Mime != "image/png" {
				t.Fatalf("POST async-upload.php: %s", r.body)
			}
			wantURL := c.site + "/wp-content/uploads/"
			if !strings.HasPrefix(up.Data.URL, wantURL) || !strings.HasSuffix(up.Data.URL, "/"+name) {
				t.Fatalf("uploaded file's URL %q, want %s…/%s", up.Data.URL, wantURL, name)
			}
			rel := strings.TrimPrefix(up.Data.URL, c.site+"/wp-content/")
			if b, err := os.ReadFile(filepath.Join(wpContentDir, filepath.FromSlash(rel))); err != nil || !bytes.Equal(b, img) {
				t.Errorf("the uploaded file in %s: %d bytes, %v; want the %d bytes sent", wpContentDir, len(b), err, len(img))
			}

			r = newWPClient(t, baseURL, host).get(t, up.Data.URL)
			r.wantStatus(t, "GET "+up.Data.URL, http.StatusOK)
			if ct := r.header.Get("Content-Type"); ct != "image/png" {
				t.Errorf("GET %s: Content-Type %q, want image/png", up.Data.URL, ct)
			}
			if !bytes.Equal(r.body, img) {
				t.Fatalf("GET %s: %d bytes differing from the %d uploaded", up.Data.URL, len(r.body), len(img))
			}

			// The media library lists it.
			r = c.get(t, fmt.Sprintf("%swp/v2/media/%d", restRoot, up.Data.ID))
			r.wantStatus(t, "GET wp/v2/media/ID", http.StatusOK)
			var media struct {
				SourceURL string `json:"source_url"`
			}
			r.decode(t, "GET wp/v2/media/ID", &media)
			if media.SourceURL != up.Data.URL {
				t.Fatalf("GET wp/v2/media/%d: source_url %q, want %q", up.Data.ID, media.SourceURL, up.Data.URL)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}

// TestWordPressUnderPHPFPM runs the WordPress scenario behind nginx + php-fpm: the reference
// behaviour for askrd's per-request mode, and the proof that the scenario itself is right.
func TestWordPressUnderPHPFPM(t *testing.T) {
	host := setupWordPress(t)
	base := startNginxFPM(t, wpRoot, wpContentAlias)
	runWordPressScenario(t, base, host)
}

// TestWordPress runs the WordPress scenario behind askrd's per-request mode: Debian's WordPress as
// the document root, /wp-content/ aliased to /var/lib/wordpress/wp-content as under nginx.
func TestWordPress(t *testing.T) {
	host := setupWordPress(t)
	s := startAskrd(t, opts{perRequest: true, root: wpRoot, args: []string{"--workers", "4"},
		config: "[server]\nalias = { \"" + wpContentAlias.Prefix + "\" = \"" + wpContentAlias.Dir + "\" }\n"})
	runWordPressScenario(t, s.URL, host)
}
