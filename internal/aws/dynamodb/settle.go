package dynamodb

import (
	"context"
	"time"
)

// Scans read eventually consistent pages once that cannot miss anything
// (issue 12 item 5): they cost half the read units of strongly consistent
// ones. DynamoDB documents no bound on how stale an eventually consistent
// read may be: its response "may not reflect the results of a recently
// completed write operation", and repeated "after a short time" it should
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html).
// ResourceOptions.Settle is the bound this store assumes: a minute by
// default, against "a short time".
//
// When is a page of a scan safe? Its range ends at or before the export's
// transactionTime T, given out at kick-off K (bulk.Clock). Every version
// stamped at or before T was stored before K, and every write after K is
// stamped after T: out of the range. What an eventually consistent read
// may miss are the writes of the last Settle; if K is older than that,
// they all came after K, and none of them adds a version to the range.
// They can only remove one (replaced or deleted after K): a strongly
// consistent read after the removal misses it, an eventually consistent
// one may still return it, and it was the stored version at T either way.
// Neither can return two versions of one resource in the range: both were
// written, and the older removed, before K.
//
// The end of the range is no such bound, though it looks like one: a
// version is written after its stamp (up to an import's lease later), and
// the write that removes an old version, whatever its key, may have
// completed just before K; a stale read would return the old version next
// to the new one. K is not known to the store, but the clock's high-water
// mark hw (clock.go) is at least K once the kick-off has returned, so
// now - hw > Settle is a sound test (with the functions' clocks agreeing
// to well within Settle, as Lambda's do): one strongly consistent GetItem
// of _clock, taken before a scan's second page (single-page scans save
// nothing and pay nothing) and again only once hw + Settle has passed.
// Once true it stays true for the rest of the scan: K does not move. It is
// rarely true on a table that kicks off or imports every minute, and
// mostly true for the later pages of a long export on a quiet one, which
// is where the read units are.

// DefaultSettle is ResourceOptions.Settle's default.
const DefaultSettle = time.Minute

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// consistency decides, page by page, whether one scan must read strongly
// consistent.
type consistency struct {
	s         *ResourceStore
	pages     int
	eventual  bool      // decided for the rest of the scan
	notBefore time.Time // no use reading hw again before this
}

// strong reports whether the next page must be read strongly consistent.
func (c *consistency) strong(ctx context.Context) bool {
	c.pages++
	settle := c.s.opts.Settle
	if settle == 0 {
		settle = DefaultSettle
	}
	switch {
	case c.eventual:
		return false
	case settle < 0, c.pages == 1:
		return true
	}
	now := c.s.now()
	if now.Before(c.notBefore) {
		return true
	}
	hw, err := c.s.readHW(ctx)
	switch {
	case err != nil:
		return true // no evidence: strongly consistent, and ask again next page
	case hw.IsZero():
		// Nothing was ever kicked off (tests): this scan has no K.
		c.notBefore = farFuture
		return true
	}
	if now.Sub(hw) > settle {
		c.eventual = true
		return false
	}
	c.notBefore = hw.Add(settle)
	return true
}
