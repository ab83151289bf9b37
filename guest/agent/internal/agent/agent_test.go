package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"recontext.dev/guest/agent/internal/fusetest"
	"recontext.dev/guest/agent/internal/layer"
	"recontext.dev/guest/agent/internal/links"
	"recontext.dev/guest/agent/internal/logx"
)

func TestStatusFileShowsTheAnnouncedStack(t *testing.T) {
	fusetest.RequireFuse(t)
	dir := t.TempDir()
	mp := filepath.Join(dir, "mnt")
	os.Mkdir(mp, 0o755)
	svc := filepath.Join(dir, "svc")
	fusetest.WriteTree(t, svc, map[string]string{"etc/a": "a", ".recontext/manifest.json": `{"layer":"svc","class":"service","digest":"sha256:0a"}`,
		".recontext/hooks.json": `{"hooks":[{"name":"x","paths":["/etc"],"run":["/bin/true"]}]}`})
	l, err := layer.FromDir(layer.DirSpec{Name: "svc", Dir: svc, Priority: 100})
	if err != nil {
		t.Fatal(err)
	}
	appEtc := filepath.Join(dir, "app/etc") // where "the application" looks: a link into the union
	a, err := Start(Options{Mountpoint: mp, Layers: []layer.Layer{l}, Control: filepath.Join(dir, "ctl.sock"), Log: logx.Discard(),
		Links: []links.Link{{Path: appEtc, From: "/etc"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got, err := os.ReadFile(appEtc + "/a"); err != nil || string(got) != "a" {
		t.Errorf("through the declared link: %q %v", got, err)
	}
	f, err := os.Open(mp + "/etc/a") // an open file shows in its layer's openFiles
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := os.ReadFile(mp + "/.recontext/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	if st.Mountpoint != mp || st.Pid != os.Getpid() || st.Control != filepath.Join(dir, "ctl.sock") || st.Generation != 1 {
		t.Errorf("status %+v", st)
	}
	if len(st.Layers) != 1 || st.Layers[0].Class != "service" || st.Layers[0].Digest != "sha256:0a" || st.Layers[0].OpenFiles != 1 || st.Layers[0].Since == "" {
		t.Errorf("layers %+v", st.Layers)
	}
	if len(st.Links) != 1 || st.Links[0].State != "created" {
		t.Errorf("links %+v", st.Links)
	}
	if len(st.Hooks.InForce) != 1 || st.Hooks.InForce[0].Name != "x" {
		t.Errorf("hooks %+v", st.Hooks)
	}
	// set through the control socket: answered once announced.
	result, err := ControlRequest(st.Control, Request{Op: "set", Layers: []layer.DirSpec{{Name: "svc", Dir: svc, Priority: 5}}})
	if err != nil || string(result) != `{"generation":2}` {
		t.Errorf("set: %s %v", result, err)
	}
	data, _ = os.ReadFile(mp + "/.recontext/status.json")
	json.Unmarshal(data, &st)
	if st.Generation != 2 || st.Layers[0].Priority != 5 {
		t.Errorf("status after set: generation %d, layers %+v", st.Generation, st.Layers)
	}
}
