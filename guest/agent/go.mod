module recontext.dev/guest/agent

go 1.26.8

require (
	github.com/hanwen/go-fuse/v2 v2.12.1
	golang.org/x/sys v0.50.0
)

require gopkg.in/yaml.v3 v3.0.1
