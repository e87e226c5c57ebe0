package storage

// EngineStats are the Pebble figures an operator graphs to see the store
// keep up: how much is on disk, how far compactions are behind, how the
// block cache and the write-ahead log do.
type EngineStats struct {
	DiskBytes         uint64 // every file of the store
	WALBytes          uint64 // live write-ahead log files
	MemtableBytes     uint64
	L0Files           int64  // files in level 0; many mean compactions lag
	L0Sublevels       int32  // read amplification of level 0
	ReadAmplification int    // sublevels a point read may check
	CompactionDebt    uint64 // estimated bytes to compact before the LSM is in shape
	Compactions       int64  // completed since the store opened
	Flushes           int64  // memtable flushes since the store opened
	BlockCacheHits    int64
	BlockCacheMisses  int64
}

// EngineStats returns the current Pebble figures, or zeros once the store is
// closed. It costs one pebble Metrics call, so call it at scrape time.
func (s *Store) EngineStats() EngineStats {
	if !s.gate.enter() {
		return EngineStats{}
	}
	defer s.gate.exit()
	m := s.db.Metrics()
	return EngineStats{
		DiskBytes:         m.DiskSpaceUsage(),
		WALBytes:          m.WAL.PhysicalSize,
		MemtableBytes:     m.MemTable.Size,
		L0Files:           m.Levels[0].TablesCount,
		L0Sublevels:       m.Levels[0].Sublevels,
		ReadAmplification: m.ReadAmp(),
		CompactionDebt:    m.Compact.EstimatedDebt,
		Compactions:       m.Compact.Count,
		Flushes:           m.Flush.Count,
		BlockCacheHits:    m.BlockCache.Hits,
		BlockCacheMisses:  m.BlockCache.Misses,
	}
}
