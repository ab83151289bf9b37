// runc-nosr: the runc wrapper that lets privileged containers start in this sandbox; see main.go.
module recontext.dev/test/cluster/runc-nosr

go 1.24.0
