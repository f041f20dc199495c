package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Debian's WordPress (the wordpress package).
const (
	// WordPressRoot is where Debian's wordpress package installs WordPress: the document root. Its
	// wp-config.php loads /etc/wordpress/config-<host>.php, <host> being the request's Host
	// header without the port, lowercased, reduced to [a-z0-9.-] (or config-<domain>.php, or
	// config-default.php).
	WordPressRoot = "/usr/share/wordpress"
	// WordPressContent is Debian's WP_CONTENT_DIR (set by wp-config.php unless the site config
	// sets it): themes, plugins and uploads live outside the document root, and the server maps
	// /wp-content/ here (README.Debian's "Alias /wp-content /var/lib/wordpress/wp-content").
	WordPressContent = "/var/lib/wordpress/wp-content"
	// WordPressConfigDir holds the per-host config files.
	WordPressConfigDir = "/etc/wordpress"
)

// WordPressAlias is the URL mapping Debian's WordPress needs besides its document root.
var WordPressAlias = Alias{Prefix: "/wp-content/", Dir: WordPressContent + "/"}

// WordPressFiles are the files a WordPress site needs: Debian's WordPress, its default theme,
// MariaDB and PHP's MySQL driver (make deps-wordpress installs them).
var WordPressFiles = []string{
	WordPressRoot + "/wp-config.php", WordPressContent + "/themes/twentytwentythree/theme.json",
	"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb",
	"/etc/php/8.2/mods-available/mysqli.ini",
}

// WordPressMissing says what a WordPress site lacks on this machine (nil: nothing): a file of
// WordPressFiles, or the right to write WordPressConfigDir (the site config goes there: root).
func WordPressMissing() error {
	for _, f := range WordPressFiles {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w (make deps-wordpress installs wordpress, wordpress-theme-twentytwentythree, mariadb-server, php8.2-mysql)", err)
		}
	}
	if err := unix.Access(WordPressConfigDir, unix.W_OK); err != nil {
		return fmt.Errorf("%s is not writable (%v): the site config goes there (run as root)", WordPressConfigDir, err)
	}
	return nil
}

// WordPressVersion is the installed WordPress's $wp_version, or "".
func WordPressVersion() string {
	b, _ := os.ReadFile(WordPressRoot + "/wp-includes/version.php")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "$wp_version = '"); ok {
			return strings.TrimSuffix(v, "';")
		}
	}
	return ""
}

// WordPressSite is one WordPress site on Debian's WordPress: a database and user on a private
// MariaDB, and WordPressConfigDir/config-<Host>.php pointing at them. Host is unique and resolves
// nowhere; requests send it as their Host header. The site is not installed yet (its wizard does).
type WordPressSite struct {
	Host   string
	config string
}

// NewWordPressSite creates the site's database on db and writes its config; who names the program
// (a comment in the config, and the start of Host).
func NewWordPressSite(db *MariaDB, who string) (*WordPressSite, error) {
	password := RandomHex(12)
	if err := db.Exec("CREATE DATABASE wordpress CHARACTER SET utf8mb4; " +
		"CREATE USER 'wordpress'@'localhost' IDENTIFIED BY '" + password + "'; " +
		"GRANT ALL ON wordpress.* TO 'wordpress'@'localhost';"); err != nil {
		return nil, err
	}
	host := fmt.Sprintf("%s-%d-%s.local", who, os.Getpid(), RandomHex(4))
	var keys strings.Builder
	for _, k := range []string{"AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
		"AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"} {
		fmt.Fprintf(&keys, "define('%s', '%s');\n", k, RandomHex(32))
	}
	config := `<?php
// Written by askr's internal/harness for ` + who + ` (pid ` + fmt.Sprint(os.Getpid()) + `); removed when it ends.
// Debian's ` + WordPressRoot + `/wp-config.php loads it for Host: ` + host + `.
define('DB_NAME', 'wordpress');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', '` + password + `');
define('DB_HOST', 'localhost:` + db.Socket + `'); // host:socket, the private MariaDB
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
` + keys.String() + `
// No HTTP from WordPress: not to wordpress.org (update checks, translations, dashboard feeds), and
// not to the site itself (install's pretty-permalink probe, cron, site health): the host name
// resolves nowhere, and nothing here may depend on DNS or the network. The filter is set before
// plugin.php loads, the way WP_Hook::build_preinitialized_hooks expects it.
define('WP_HTTP_BLOCK_EXTERNAL', true);
$GLOBALS['wp_filter']['block_local_requests'][10][] = array('function' => '__return_true', 'accepted_args' => 1);
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
`
	path := filepath.Join(WordPressConfigDir, "config-"+host+".php")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("write the WordPress config: %w", err)
	}
	site := &WordPressSite{Host: host, config: path}
	if _, err := f.WriteString(config); err != nil {
		f.Close()
		site.Remove()
		return nil, fmt.Errorf("write the WordPress config: %w", err)
	}
	if err := f.Close(); err != nil {
		site.Remove()
		return nil, fmt.Errorf("write the WordPress config: %w", err)
	}
	return site, nil
}

// Remove removes the site's config file.
func (s *WordPressSite) Remove() error {
	if err := os.Remove(s.config); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
