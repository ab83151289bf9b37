package devices

import (
	"slices"
	"strings"

	"recontext.dev/guest/agent/internal/layer"
)

// Medium is a mounted medium; Layer is nil when it carries no context layer.
type Medium struct {
	Dev     string
	Seq     int    // per drive: the how-manyth medium mounted in it
	Dir     string // where it is mounted
	Arrival int    // across all drives: the newest image of a layer wins
	Layer   *layer.Layer
	PVD     []byte // the ISO9660 Primary Volume Descriptor read around the mount; nil if unsure
}

// StackOf is the stack the union should show: every plain-directory layer, and for each layer
// name the newest medium carrying it (a medium replaces a directory layer of its name).
func StackOf(media []*Medium, fixed []layer.Layer) []layer.Layer {
	newest := map[string]*Medium{}
	for _, m := range media {
		if m.Layer == nil {
			continue
		}
		if seen := newest[m.Layer.Name]; seen == nil || m.Arrival > seen.Arrival {
			newest[m.Layer.Name] = m
		}
	}
	var out []layer.Layer
	for _, l := range fixed {
		if newest[l.Name] == nil {
			out = append(out, l)
		}
	}
	var names []string
	for name := range newest {
		names = append(names, name)
	}
	slices.SortFunc(names, strings.Compare)
	for _, name := range names {
		out = append(out, *newest[name].Layer)
	}
	return out
}

// LayerOf is the layer a mounted medium's manifest describes; nil without a layer name.
func LayerOf(m layer.Manifest, dev, dir string) *layer.Layer {
	if m.Layer == "" || !layer.ValidName(m.Layer) {
		return nil
	}
	return &layer.Layer{Name: m.Layer, Class: m.Class, Priority: m.Priority, Digest: m.Digest, Root: dir,
		Source: layer.Source{Kind: "device", Device: "/dev/" + dev}}
}
