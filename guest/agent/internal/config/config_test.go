package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"recontext.dev/guest/agent/internal/hooks"
)

func TestMissingFileIsTheDefaults(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Hooks
	if !slices.Equal(p.Classes, []string{"service"}) || p.RunUser != "nobody" || len(p.Units) != 0 || len(p.Pidfiles) != 0 {
		t.Errorf("defaults %+v: want service only, nobody, no units, no pidfiles", p)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(hooks.Policy) bool
		wantErr    string
	}{
		{"empty file", "", func(p hooks.Policy) bool { return p.RunUser == "nobody" }, ""},
		{"an explicit empty class list allows no hooks at all", "hooks:\n  classes: []\n", func(p hooks.Policy) bool { return len(p.Classes) == 0 }, ""},
		{"absent keys keep their defaults", "hooks:\n  restart:\n    units: [chrony.service]\n",
			func(p hooks.Policy) bool {
				return slices.Equal(p.Units, []string{"chrony.service"}) && slices.Equal(p.Classes, []string{"service"})
			}, ""},
		{"root only when written", "hooks:\n  run:\n    user: root\n", func(p hooks.Policy) bool { return p.RunUser == "root" }, ""},
		{"a misspelt key is an error", "hooks:\n  clases: [broker]\n", nil, "clases"},
		{"a unit that reads as an option", "hooks:\n  restart:\n    units: [--all]\n", nil, "unit name"},
		{"a relative pidfile", "hooks:\n  signal:\n    pidfiles: [run/x.pid]\n", nil, "clean absolute"},
		{"an unclean command directory", "hooks:\n  run:\n    commands: [/usr/../bin/]\n", nil, "clean absolute"},
		{"an empty user", "hooks:\n  run:\n    user: \"\"\n", nil, "must name a user"},
		{"a bad signal", "hooks:\n  signal:\n    signals: [NOPE]\n", nil, "signal name"},
		{"a relative link", "links:\n  - path: etc/x\n", nil, "clean absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c.Hooks) {
				t.Errorf("policy %+v", c.Hooks)
			}
		})
	}
}

func TestLinks(t *testing.T) {
	c, err := Parse([]byte("links:\n  - path: /etc/glusterfs\n  - path: /etc/nginx/site.conf\n    from: /nginx/site.conf\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Links) != 2 || c.Links[0].Path != "/etc/glusterfs" || c.Links[0].From != "" || c.Links[1].From != "/nginx/site.conf" {
		t.Errorf("links %+v", c.Links)
	}
}
