package api

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/export"
)

// applyContract applies what a client's business contract adds to its
// scopes at kick-off (requirements 1.6: the server SHALL enforce business
// rules as well as scopes; R37, R93):
//
//   - Groups: a client limited to some Groups may not export at system
//     level (every patient's data); its Patient-level export covers only
//     their members (bulk.Contract, enforced in planning); Group level is
//     checked by authorizeKickoff (R37).
//   - Types: `_type` outside them is refused, as outside the scopes is
//     (R42); without `_type` only they are exported (R15).
//   - MaxLookback: `_since` is required and may not be older than kick-off
//     time minus the look-back: an export without `_since` reaches back
//     forever.
//
// Every refusal is EFORBIDDEN (403) saying which limit of the contract it
// meets; none is ignored under lenient handling, which covers unsupported
// input, not authorization. The one exception is associated Provenance the
// contract's types leave out, which is ignored as the scopes' is.
func (s *Server) applyContract(c *bulk.Client, req *bulk.ExportRequest) error {
	if c == nil {
		return nil
	}
	if !c.AllGroups() {
		groups := slices.Sorted(slices.Values(c.Groups))
		switch req.Level {
		case bulk.LevelSystem:
			return bulk.Errorf(bulk.EFORBIDDEN, "This client's contract limits it to %s; use Group/[id]/$export or Patient/$export.", export.GroupList(groups))
		case bulk.LevelPatient:
			req.Contract = &bulk.Contract{Groups: groups}
		}
	}
	if len(c.Types) > 0 {
		for _, t := range req.Types {
			if !c.AllowsType(t) {
				return bulk.Errorf(bulk.EFORBIDDEN, "This client's contract does not allow exporting %s; it allows %s.", t, strings.Join(c.Types, ", "))
			}
		}
		allowed := []string{}
		for _, t := range c.Types {
			if (req.Allowed == nil || slices.Contains(req.Allowed, t)) && !slices.Contains(allowed, t) {
				allowed = append(allowed, t)
			}
		}
		req.Allowed = allowed
		if req.Associated != "" && !c.AllowsType("Provenance") {
			msg := "includeAssociatedData adds Provenance, which this client's contract does not allow exporting."
			if !req.Lenient {
				return bulk.Errorf(bulk.EFORBIDDEN, "%s", msg)
			}
			req.Associated = ""
			req.Ignored = append(req.Ignored, msg+" It was ignored (Prefer: handling=lenient).")
		}
	}
	if req.Allowed != nil && len(req.Allowed) == 0 {
		// Nothing to export; and a stored job reads an empty list as
		// "every type" (omitempty), so refuse rather than store it.
		return bulk.Errorf(bulk.EFORBIDDEN, "This client's contract and the access token's scopes allow no resource type in common.")
	}
	if c.MaxLookback > 0 {
		floor := s.Export.Now().UTC().Add(-c.MaxLookback).Truncate(time.Millisecond)
		if req.Since.IsZero() || req.Since.Before(floor) {
			return bulk.Errorf(bulk.EFORBIDDEN, "This client's contract limits exports to changes in the last %s: send _since no earlier than %s.",
				lookbackText(c.MaxLookback), floor.Format("2006-01-02T15:04:05.000Z07:00"))
		}
		req.NotBefore = floor
	}
	return nil
}

// lookbackText says a look-back in days when it is whole days.
func lookbackText(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

// contractGroups returns the client's contract when it limits the Groups
// the client may see, else nil (no authorization, or "*").
func contractGroups(p *Principal) *bulk.Client {
	if p == nil || p.Grant == nil || p.Grant.Client == nil || p.Grant.Client.AllGroups() {
		return nil
	}
	return p.Grant.Client
}
