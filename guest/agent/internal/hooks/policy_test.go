package hooks

import (
	"strings"
	"testing"
)

func parseOne(t *testing.T, layerName, class, text string) []Hook {
	t.Helper()
	hooks, err := Parse([]byte(text), layerName, class)
	if err != nil {
		t.Fatal(err)
	}
	return hooks
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"not json", `{`, "not an object"},
		{"no hooks array", `{}`, `"hooks" array`},
		{"bad name", `{"hooks":[{"name":"a b","paths":["/"],"run":["/bin/true"]}]}`, `"name"`},
		{"twice", `{"hooks":[{"name":"a","disabled":true},{"name":"a","disabled":true}]}`, "defined twice"},
		{"unknown field", `{"hooks":[{"name":"a","paths":["/"],"run":["/bin/true"],"user":"root"}]}`, `unknown field "user"`},
		{"relative command", `{"hooks":[{"name":"a","paths":["/"],"run":["sh","-c","x"]}]}`, "absolute path"},
		{"two actions", `{"hooks":[{"name":"a","paths":["/"],"run":["/bin/true"],"restart":"x.service"}]}`, "exactly one"},
		{"dotdot path", `{"hooks":[{"name":"a","paths":["/etc/../x"],"run":["/bin/true"]}]}`, ". or .."},
		{"unit option", `{"hooks":[{"name":"a","paths":["/"],"restart":"--force"}]}`, "unit name"},
		{"unit shell", `{"hooks":[{"name":"a","paths":["/"],"restart":"a;b.service"}]}`, "unit name"},
		{"signal name", `{"hooks":[{"name":"a","paths":["/"],"signal":{"name":"NOPE","pidfile":"/run/x.pid"}}]}`, "signal name"},
		{"relative pidfile", `{"hooks":[{"name":"a","paths":["/"],"signal":{"name":"HUP","pidfile":"run/x.pid"}}]}`, "absolute"},
		{"debounce range", `{"hooks":[{"name":"a","paths":["/"],"run":["/bin/true"],"debounceMs":-1}]}`, "debounceMs"},
		{"appendPaths with signal", `{"hooks":[{"name":"a","paths":["/"],"signal":{"name":"HUP","pidfile":"/run/x"},"appendPaths":true}]}`, "only goes with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "L", "service")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	h := parseOne(t, "L", "service", `{"hooks":[{"name":"g","paths":["etc/glusterfs/"],"run":["/usr/sbin/x"]},{"name":"n","paths":["/"],"signal":{"name":"HUP","pidfile":"/run/n.pid"}}]}`)
	if h[0].DebounceMs != 100 || h[0].TimeoutMs != 60000 || h[0].Paths[0] != "/etc/glusterfs" {
		t.Errorf("defaults: %+v", h[0])
	}
	if h[1].SignalName != "SIGHUP" {
		t.Errorf("signal name %q, want SIGHUP", h[1].SignalName)
	}
}

func TestPolicyDecide(t *testing.T) {
	const mp = "/run/recontext/context"
	svc := `{"hooks":[{"name":"reload","paths":["/etc"],"run":["/usr/sbin/reload"]}]}`
	policy := DefaultPolicy()
	policy.Units = []string{"chrony.service"}
	policy.Pidfiles = []string{"/run/nginx.pid"}
	for _, tc := range []struct {
		name     string
		layers   [][]Hook
		policy   Policy
		inForce  []string // "name@layer"
		refusals []string // substrings, one per refusal, in order
	}{
		{
			name:    "a service layer's hook runs",
			layers:  [][]Hook{parseOne(t, "app", "service", svc)},
			policy:  policy,
			inForce: []string{"reload@app"},
		},
		{
			name: "a broker layer above cannot add a root shell",
			layers: [][]Hook{
				parseOne(t, "broker", "broker", `{"hooks":[{"name":"own","paths":["/"],"run":["/bin/sh","-c","id"]}]}`),
				parseOne(t, "app", "service", svc),
			},
			policy:   policy,
			inForce:  []string{"reload@app"},
			refusals: []string{"class broker may not declare hooks"},
		},
		{
			name: "a broker layer above cannot disable a service hook",
			layers: [][]Hook{
				parseOne(t, "broker", "broker", `{"hooks":[{"name":"reload","disabled":true}]}`),
				parseOne(t, "app", "service", svc),
			},
			policy:   policy,
			inForce:  []string{"reload@app"},
			refusals: []string{"class broker"},
		},
		{
			name:     "a layer without a class declares nothing",
			layers:   [][]Hook{parseOne(t, "dir", "", svc)},
			policy:   policy,
			refusals: []string{"class (none)"},
		},
		{
			name: "a higher service layer replaces a lower one's hook",
			layers: [][]Hook{
				parseOne(t, "app2", "service", `{"hooks":[{"name":"reload","paths":["/etc"],"run":["/usr/sbin/other"]}]}`),
				parseOne(t, "app", "service", svc),
			},
			policy:  policy,
			inForce: []string{"reload@app2"},
		},
		{
			name:     "a unit not on the list is not restarted",
			layers:   [][]Hook{parseOne(t, "app", "service", `{"hooks":[{"name":"r","paths":["/"],"restart":"sshd.service"}]}`)},
			policy:   policy,
			refusals: []string{"unit sshd.service may not be restarted"},
		},
		{
			name:    "a listed unit is",
			layers:  [][]Hook{parseOne(t, "app", "service", `{"hooks":[{"name":"r","paths":["/"],"restart":"chrony.service"}]}`)},
			policy:  policy,
			inForce: []string{"r@app"},
		},
		{
			name:     "a pidfile inside the mount is refused even when listed",
			layers:   [][]Hook{parseOne(t, "app", "service", `{"hooks":[{"name":"s","paths":["/"],"signal":{"name":"HUP","pidfile":"/run/recontext/context/app.pid"}}]}`)},
			policy:   Policy{Classes: []string{"service"}, RunUser: "nobody", Pidfiles: []string{"/run/recontext/context/app.pid"}, Signals: []string{"HUP"}},
			refusals: []string{"inside the mount"},
		},
		{
			name:     "a signal not on the list is refused",
			layers:   [][]Hook{parseOne(t, "app", "service", `{"hooks":[{"name":"s","paths":["/"],"signal":{"name":"KILL","pidfile":"/run/nginx.pid"}}]}`)},
			policy:   policy,
			refusals: []string{"signal SIGKILL is not allowed"},
		},
		{
			name:     "a command outside the allowed directories is refused",
			layers:   [][]Hook{parseOne(t, "app", "service", `{"hooks":[{"name":"x","paths":["/"],"run":["/usr/lib/../../bin/sh"]}]}`)},
			policy:   Policy{Classes: []string{"service"}, RunUser: "nobody", Commands: []string{"/usr/lib/recontext-hooks/"}},
			refusals: []string{"not a clean path"},
		},
		{
			name:     "an allowed directory does not admit its sibling by prefix",
			layers:   [][]Hook{parseOne(t, "app", "service", `{"hooks":[{"name":"x","paths":["/"],"run":["/usr/lib/recontext-hooks-evil/x"]}]}`)},
			policy:   Policy{Classes: []string{"service"}, RunUser: "nobody", Commands: []string{"/usr/lib/recontext-hooks/"}},
			refusals: []string{"not allowed (hooks.run.commands)"},
		},
		{
			name: "a refused higher hook does not let the lower one of its name through",
			layers: [][]Hook{
				parseOne(t, "app2", "service", `{"hooks":[{"name":"reload","paths":["/"],"restart":"sshd.service"}]}`),
				parseOne(t, "app", "service", svc),
			},
			policy:   policy,
			refusals: []string{"sshd.service"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inForce, refused := tc.policy.Decide(tc.layers, mp)
			var got []string
			for _, h := range inForce {
				got = append(got, h.Name+"@"+h.Layer)
			}
			if strings.Join(got, ",") != strings.Join(tc.inForce, ",") {
				t.Errorf("in force %v, want %v", got, tc.inForce)
			}
			if len(refused) != len(tc.refusals) {
				t.Fatalf("refusals %+v, want %d", refused, len(tc.refusals))
			}
			for i, r := range refused {
				if !strings.Contains(r.Reason, tc.refusals[i]) {
					t.Errorf("refusal %d: %q, want %q", i, r.Reason, tc.refusals[i])
				}
			}
		})
	}
}

func TestValidUnit(t *testing.T) {
	for unit, want := range map[string]bool{
		"chrony.service": true, "getty@tty1.service": true, "-.mount": false, "--now": false,
		"a b.service": false, "a/b.service": false, "": false,
	} {
		if ValidUnit(unit) != want {
			t.Errorf("ValidUnit(%q) = %v, want %v", unit, !want, want)
		}
	}
}
