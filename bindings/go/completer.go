package ordq

import "context"

// maxCompleteBatch bounds the completions a Worker commits in one call.
const maxCompleteBatch = 100

// finished is a handler's success waiting to be committed; the handler's
// goroutine waits on done for the outcome.
type finished struct {
	lease  *Lease
	result []byte
	done   chan error
}

// completer commits the results of a Worker's handlers. It takes every
// result that finished while its previous call ran (up to
// maxCompleteBatch) and commits them with one CompleteBatch: concurrent
// handlers then share round trips and commits, and a lone result is
// committed at once, without waiting for company. It returns when in is
// closed and drained.
func (w *Worker) completer(in <-chan finished) {
	batch := make([]finished, 0, maxCompleteBatch)
	for first := range in {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxCompleteBatch {
			select {
			case f, ok := <-in:
				if !ok {
					break fill
				}
				batch = append(batch, f)
			default:
				break fill
			}
		}
		w.commit(batch)
	}
}

// commit completes batch and gives each waiting handler its own outcome.
func (w *Worker) commit(batch []finished) {
	bg := context.Background()
	if len(batch) > 1 {
		items := make([]CompleteItem, len(batch))
		for i, f := range batch {
			items[i] = CompleteItem{Lease: f.lease, Result: f.result}
		}
		if res, err := w.q.CompleteBatch(bg, items); err == nil {
			for i, f := range batch {
				f.done <- res[i].Err
			}
			return
		}
		// The call as a whole failed (one result over the size limit
		// fails all of them): complete one by one so that each lease
		// gets its own outcome.
	}
	for _, f := range batch {
		_, err := f.lease.Complete(bg, f.result)
		f.done <- err
	}
}
