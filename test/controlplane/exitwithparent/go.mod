// The test servers' exit-with-parent watch, shared by etcd/ and kas/; see ../README.md.
module recontext.dev/test/controlplane/exitwithparent

go 1.24.0
