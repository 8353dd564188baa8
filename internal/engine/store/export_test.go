package store

// Fallbacks exposes how often the watcher read the database because its
// live buffer missed events, so tests can prove that path ran.
func (w *Watcher) Fallbacks() int { return w.fallbacks }
