module github.com/askr-php/askr

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/coreos/go-systemd/v22 v22.7.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
