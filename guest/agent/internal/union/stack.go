// Package union is the read-only union of layers: a stack (one frozen generation of the layer
// list), path resolution against one stack, the exact set of kernel cache entries a swap between
// two stacks invalidates, and the FUSE file system serving the current stack.
package union

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"recontext.dev/guest/agent/internal/layer"
)

// Stack is one immutable generation of the layer list. The union holds exactly one current stack
// and replaces it whole; every lookup runs against the stack current when it started.
type Stack struct {
	Generation uint64
	Layers     []layer.Layer // highest priority first; equal priorities by name
	ChangedAt  time.Time
	// identity[i] names the tree Layers[i] shows in this stack, for comparing two stacks: the
	// root of a device layer (a fresh mount per medium, never changed in place), or the root and
	// the generation of a directory layer (re-read at every swap: edited in place between swaps).
	identity []string

	mu       sync.Mutex
	entries  map[string]*Entry // rel path → resolution (nil: absent)
	listings map[string][]string
}

// NewStack validates and orders layers into a stack. Names must be unique.
func NewStack(layers []layer.Layer, generation uint64, changedAt time.Time) (*Stack, error) {
	seen := map[string]bool{}
	for _, l := range layers {
		if err := l.Validate(); err != nil {
			return nil, err
		}
		if seen[l.Name] {
			return nil, &layer.Error{Msg: fmt.Sprintf("layer %s is in the stack twice", l.Name)}
		}
		seen[l.Name] = true
	}
	ordered := slices.Clone(layers)
	slices.SortStableFunc(ordered, func(a, b layer.Layer) int {
		if a.Priority != b.Priority {
			if a.Priority > b.Priority {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	s := &Stack{Generation: generation, Layers: ordered, ChangedAt: changedAt, entries: map[string]*Entry{}, listings: map[string][]string{}}
	for _, l := range ordered {
		id := l.Root
		if l.Source.Kind != "device" {
			id = fmt.Sprintf("%s\x00gen%d", l.Root, generation)
		}
		s.identity = append(s.identity, id)
	}
	return s, nil
}

// LayerNames is "name:priority" per layer, highest first (for logs).
func (s *Stack) LayerNames() []string {
	out := make([]string, len(s.Layers))
	for i, l := range s.Layers {
		out[i] = fmt.Sprintf("%s:%d", l.Name, l.Priority)
	}
	return out
}
