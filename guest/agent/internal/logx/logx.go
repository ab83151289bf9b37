// Package logx makes the agent's logger: JSON lines on stderr in the operator's format,
// {"ts": "…Z", "level": "info", "msg": "…", …fields}.
package logx

import (
	"io"
	"log/slog"
	"strings"
)

// New writes JSON lines to w.
func New(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("ts", a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z"))
			case slog.LevelKey:
				return slog.String("level", strings.ToLower(a.Value.String()))
			}
			return a
		},
	}))
}

// Discard drops everything (tests, library default).
func Discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
