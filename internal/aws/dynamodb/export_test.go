package dynamodb

// UseLayout1 makes s read and write layout 1 (layout.go), without
// recording it, as the code before layout 2 did: what it writes is what an
// old deployment left in its table.
func UseLayout1(s *ResourceStore) { s.lay = layout{version: 1, shards: s.shards} }
