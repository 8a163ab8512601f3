package bulk

import "iter"

// JoinTimes yields each of members, the members of a new version of a
// Group, with when it joined the Group (Member.Since), in the order of
// members: a member of the version it replaces keeps the join time was
// gives it; any other member joins at at, the new version's LastUpdated.
// was is empty for a Group that is not live (stored for the first time,
// or again after its deletion), and a patient who left and comes back
// joins again. T is the store's own form of a time, which passes through
// untouched.
//
// Every ResourceStore applies it on Put to each new version of a Group in
// turn: what it yields for one version is the was of the next.
func JoinTimes[T any](members []string, was map[string]T, at T) iter.Seq2[string, T] {
	return func(yield func(string, T) bool) {
		for _, m := range members {
			since, ok := was[m]
			if !ok {
				since = at
			}
			if !yield(m, since) {
				return
			}
		}
	}
}
