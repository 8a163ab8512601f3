package bulk

// ShardOf returns the shard of the resource with the given id when each
// type is split into shards shards (at least 1): FNV-1a (32 bit) of the id
// modulo shards. Every ResourceStore shards by it, so a resource lands in
// the same shard in each: it is cheap, stable across releases and
// platforms (it is in the stores' keys), and spreads generated ids evenly.
func ShardOf(id string, shards int) int {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= prime
	}
	return int(h % uint32(shards))
}
