package layer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseArgument(t *testing.T) {
	for _, tc := range []struct {
		arg, wantName, wantDir string
		wantPriority           int64
		wantErr                string
	}{
		{arg: "site=/srv/site:300", wantName: "site", wantDir: "/srv/site", wantPriority: 300},
		{arg: "a=/odd:dir:-5", wantName: "a", wantDir: "/odd:dir", wantPriority: -5},
		{arg: "rel=ctx/x:1", wantName: "rel", wantDir: "/cwd/ctx/x", wantPriority: 1},
		{arg: "nodir=:1", wantErr: "expected NAME=DIR:PRIORITY"},
		{arg: "=/x:1", wantErr: "expected NAME=DIR:PRIORITY"},
		{arg: "x=/x:high", wantErr: "not an integer"},
		{arg: "bad name=/x:1", wantErr: "name must be"},
	} {
		spec, err := ParseArgument(tc.arg, "/cwd")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.arg, err, tc.wantErr)
			}
			continue
		}
		if err != nil || spec.Name != tc.wantName || spec.Dir != tc.wantDir || spec.Priority != tc.wantPriority {
			t.Errorf("%s: %+v %v", tc.arg, spec, err)
		}
	}
}

func TestManifest(t *testing.T) {
	m, err := ParseManifest([]byte(`{"layer":"site","class":"infrastructure","priority":300,"digest":"sha256:ab","extra":1}`))
	if err != nil || m != (Manifest{Layer: "site", Class: "infrastructure", Priority: 300, HasPriority: true, Digest: "sha256:ab"}) {
		t.Errorf("%+v %v", m, err)
	}
	m, err = ParseManifest([]byte(`{"layer":7,"priority":1.5}`))
	if err != nil || m != (Manifest{}) {
		t.Errorf("fields of the wrong type are left out: %+v %v", m, err)
	}
	if _, err := ParseManifest([]byte(`[1]`)); err == nil {
		t.Error("a manifest that is not an object must be an error")
	}
	dir := t.TempDir()
	if _, ok, err := ReadManifest(dir); ok || err != nil {
		t.Errorf("no manifest: ok %v, %v", ok, err)
	}
	os.WriteFile(filepath.Join(dir, Reserved), []byte("a file where the directory should be"), 0o644)
	if _, ok, err := ReadManifest(dir); ok || err != nil {
		t.Errorf(".recontext is a file: ok %v, %v", ok, err)
	}
}
