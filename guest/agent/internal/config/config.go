// Package config reads the guest owner's configuration, /etc/recontext/ffs.yaml. A missing file
// means the defaults (hooks.DefaultPolicy); a file that does not parse is an error (the agent does
// not start on a policy it cannot read rather than fall back to one the owner did not write).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"gopkg.in/yaml.v3"

	"recontext.dev/guest/agent/internal/hooks"
	"recontext.dev/guest/agent/internal/links"
)

// DefaultPath is where packages install the configuration.
const DefaultPath = "/etc/recontext/ffs.yaml"

// Config is the whole file.
type Config struct {
	Hooks hooks.Policy
	// Links: where applications find their context under their usual paths (default none).
	Links []links.Link
}

// file mirrors the YAML; pointers tell "absent" (default) from "empty" (nothing allowed).
type file struct {
	Hooks *struct {
		Classes *[]string `yaml:"classes"`
		Run     *struct {
			User     *string   `yaml:"user"`
			Group    *string   `yaml:"group"`
			Commands *[]string `yaml:"commands"`
		} `yaml:"run"`
		Restart *struct {
			Units *[]string `yaml:"units"`
		} `yaml:"restart"`
		Signal *struct {
			Pidfiles *[]string `yaml:"pidfiles"`
			Signals  *[]string `yaml:"signals"`
		} `yaml:"signal"`
	} `yaml:"hooks"`
	Links []struct {
		Path string `yaml:"path"`
		From string `yaml:"from"`
	} `yaml:"links"`
}

// Load reads path; a missing file gives the defaults.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{Hooks: hooks.DefaultPolicy()}, nil
	}
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration; unknown keys are errors (a misspelt key must not silently
// leave a default in force).
func Parse(data []byte) (Config, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	p := hooks.DefaultPolicy()
	if h := f.Hooks; h != nil {
		set(&p.Classes, h.Classes)
		if h.Run != nil {
			if h.Run.User != nil {
				p.RunUser = *h.Run.User
			}
			if h.Run.Group != nil {
				p.RunGroup = *h.Run.Group
			}
			set(&p.Commands, h.Run.Commands)
		}
		if h.Restart != nil {
			set(&p.Units, h.Restart.Units)
		}
		if h.Signal != nil {
			set(&p.Pidfiles, h.Signal.Pidfiles)
			set(&p.Signals, h.Signal.Signals)
		}
	}
	if err := p.Validate(); err != nil {
		return Config{}, err
	}
	c := Config{Hooks: p}
	for _, l := range f.Links {
		link := links.Link{Path: l.Path, From: l.From}
		if err := link.Validate(); err != nil {
			return Config{}, err
		}
		c.Links = append(c.Links, link)
	}
	return c, nil
}

func set(dst *[]string, src *[]string) {
	if src != nil {
		*dst = append([]string{}, *src...)
	}
}
