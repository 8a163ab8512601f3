package bulk_test

import (
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
)

// TestJoinTimes: members of the replaced version keep their join time,
// others join at the new version's time, and a member who left and comes
// back joins again.
func TestJoinTimes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []string
		was     map[string]int
		at      int
		want    map[string]int
	}{
		{name: "first version", members: []string{"a", "b"}, at: 1, want: map[string]int{"a": 1, "b": 1}},
		{name: "keep and join", members: []string{"a", "c"}, was: map[string]int{"a": 1, "b": 1}, at: 2, want: map[string]int{"a": 1, "c": 2}},
		{name: "rejoin", members: []string{"a", "b"}, was: map[string]int{"a": 1}, at: 3, want: map[string]int{"a": 1, "b": 3}},
		{name: "empty", was: map[string]int{"a": 1}, at: 4, want: map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := maps.Collect(bulk.JoinTimes(tc.members, tc.was, tc.at))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("JoinTimes(%v, %v, %d) (-want +got):\n%s", tc.members, tc.was, tc.at, diff)
			}
		})
	}
	// Members come in order, and a stop ends the walk.
	var order []string
	for m := range bulk.JoinTimes([]string{"x", "y", "z"}, nil, 0) {
		order = append(order, m)
		if m == "y" {
			break
		}
	}
	if diff := cmp.Diff([]string{"x", "y"}, order); diff != "" {
		t.Errorf("JoinTimes order (-want +got):\n%s", diff)
	}
}
