package dynamodb

import (
	"context"
	"strings"

	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// mergeQueries visits the items of ins, Queries of one partition each
// (each answers in sort-key order), in sort-key order across them: a k-way
// merge, which reads a key split by shard (layout.go) in the order of the
// one key it was split from. Each partition is read a page at a time, the
// first pages at once. Sort keys are unique across the partitions (a
// split key puts each sort key in one shard); ties would go to the
// earlier partition. Every input's ExclusiveStartKey is its own.
func (s *ResourceStore) mergeQueries(ctx context.Context, ins []*ddb.QueryInput, fn func(map[string]types.AttributeValue) error) error {
	parts := make([]*partReader, len(ins))
	for i, in := range ins {
		parts[i] = &partReader{in: in, next: in.ExclusiveStartKey}
	}
	if err := parallel(ctx, s.opts.Parallel, len(parts), func(i int) error {
		return parts[i].fill(ctx, s.api)
	}); err != nil {
		return err
	}
	for {
		var head *partReader
		for _, p := range parts {
			if len(p.items) > 0 && (head == nil || strings.Compare(p.headSK(), head.headSK()) < 0) {
				head = p
			}
		}
		if head == nil {
			return nil
		}
		item := head.items[0]
		head.items = head.items[1:]
		if err := fn(item); err != nil {
			return err
		}
		if err := head.fill(ctx, s.api); err != nil {
			return err
		}
	}
}

// partReader is one partition's Query in mergeQueries: the rest of its
// current page, and where the next one starts.
type partReader struct {
	in    *ddb.QueryInput
	items []map[string]types.AttributeValue
	next  map[string]types.AttributeValue
	done  bool
}

func (p *partReader) headSK() string { return getS(p.items[0], attrSK) }

// fill reads pages until it holds an item or the partition ends.
func (p *partReader) fill(ctx context.Context, api API) error {
	for len(p.items) == 0 && !p.done {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		p.in.ExclusiveStartKey = p.next
		out, err := api.Query(ctx, p.in)
		if err != nil {
			return translate(err, "query failed")
		}
		p.items, p.next = out.Items, out.LastEvaluatedKey
		p.done = len(p.next) == 0
	}
	return nil
}
