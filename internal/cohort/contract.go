package cohort

import (
	"context"
	"slices"

	"github.com/tranchehq/tranche/internal/bulk"
)

// ContractClients is the bulk.ClientStore of the authorization server on
// the routes that read contracts (kick-off, Group reads and searches): a
// client whose contract limits its Groups also gets, among its Groups, its
// own cohorts that are within its contract (bulk.Cohort.WithinContract:
// computed, since the last change of the contract's Groups, by an
// evaluation bounded by them), so it may export and read them like its
// contract's Groups and nothing else. A cohort computed under a wider
// contract, or being deleted, is left out until it is computed again.
//
// Writes and lists pass through: the contract as stored is the operator's.
type ContractClients struct {
	bulk.ClientStore
	Cohorts bulk.CohortStore
}

var _ bulk.ClientStore = ContractClients{}

// GetClient returns the client with its cohorts added to Groups as above.
func (c ContractClients) GetClient(ctx context.Context, id string) (*bulk.Client, error) {
	cl, err := c.ClientStore.GetClient(ctx, id)
	if err != nil || cl.AllGroups() {
		return cl, err
	}
	contract := slices.Clone(cl.Groups)
	err = c.Cohorts.ListCohorts(ctx, id, func(co *bulk.Cohort) error {
		if co.Evaluated() && co.WithinContract(contract) && !slices.Contains(cl.Groups, co.ID) {
			cl.Groups = append(cl.Groups, co.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cl, nil
}
