package cohort

import (
	"context"
	"slices"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// ContractClients is the bulk.ClientStore of the authorization server on
// the routes that read contracts (kick-off, Group reads and searches): a
// client whose contract limits its Groups also gets, among its Groups, its
// own cohorts that are within its contract, so it may export and read
// them like its contract's Groups and nothing else. A cohort is within the
// contract when its latest evaluation was bounded by the contract's
// current Groups (bulk.Cohort.WithinContract) and none of those Groups
// changed since (a member the contract lost must not stay exportable
// through the cohort), and the cohort did not fail for its definition or
// contract. Otherwise it is left out until it is computed again.
//
// Writes and lists pass through: the contract as stored is the operator's.
type ContractClients struct {
	bulk.ClientStore
	Cohorts bulk.CohortStore
	// Groups reads the contract's Groups (their last change).
	Groups interface {
		Get(ctx context.Context, typ, id string) (*bulk.Resource, error)
	}
}

var _ bulk.ClientStore = ContractClients{}

// GetClient returns the client with its cohorts added to Groups as above.
func (c ContractClients) GetClient(ctx context.Context, id string) (*bulk.Client, error) {
	cl, err := c.ClientStore.GetClient(ctx, id)
	if err != nil || cl.AllGroups() {
		return cl, err
	}
	contract := slices.Clone(cl.Groups)
	var candidates []*bulk.Cohort
	err = c.Cohorts.ListCohorts(ctx, id, func(co *bulk.Cohort) error {
		failed := co.Status == bulk.CohortFailed && !co.FailureInternal
		if co.Evaluated() && !failed && co.WithinContract(contract) && !slices.Contains(cl.Groups, co.ID) {
			candidates = append(candidates, co)
		}
		return nil
	})
	if err != nil || len(candidates) == 0 {
		return cl, err
	}
	// When each contract Group last changed; a Group gone counts as
	// changed for every cohort (its members are no one's now).
	changed := make(map[string]time.Time, len(contract))
	for _, g := range contract {
		r, err := c.Groups.Get(ctx, "Group", g)
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			changed[g] = endOfTime
			continue
		} else if err != nil {
			return nil, err
		}
		changed[g] = r.LastUpdated
	}
	for _, co := range candidates {
		if !slices.ContainsFunc(co.Bound, func(g string) bool { return changed[g].After(co.RefreshedAt) }) {
			cl.Groups = append(cl.Groups, co.ID)
		}
	}
	return cl, nil
}

// endOfTime is after every evaluation.
var endOfTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// ForeignGroups returns export.Service.ForeignGroups over cohorts: the
// ids of the cohorts of every client but clientID, which its exports leave
// out (a cohort's filters and members are its creator's). Deleted cohorts
// count until their definition goes, after their Group.
func ForeignGroups(cohorts bulk.CohortStore) func(ctx context.Context, clientID string) (map[string]bool, error) {
	return func(ctx context.Context, clientID string) (map[string]bool, error) {
		out := map[string]bool{}
		err := cohorts.ListCohorts(ctx, "", func(c *bulk.Cohort) error {
			if c.Owner != clientID {
				out[c.ID] = true
			}
			return nil
		})
		return out, err
	}
}
