package inventory

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// stream decodes documents on every core while the input is still being split, and hands them
// to the builder in input order. Splitting a large List and decoding its items then overlap,
// and adding decoded objects overlaps decoding the rest.
//
// Items of an object are emitted before the object's kind is known (kubectl prints "kind" after
// "items"); if the object turns out not to be a List, its items are discarded and the object is
// emitted whole.
type stream struct {
	work    chan *batch
	batches []*batch
	current *batch
	workers sync.WaitGroup
}

// batchSize is large enough to amortise scheduling, small enough to spread a file over cores.
const batchSize = 256

type batch struct {
	docs []rawDoc
	out  []decoded
	done chan struct{}
}

func newStream() *stream {
	s := &stream{work: make(chan *batch, 64)}
	for range runtime.GOMAXPROCS(0) {
		s.workers.Go(func() {
			for b := range s.work {
				b.out = make([]decoded, len(b.docs))
				for i := range b.docs {
					b.out[i] = decodeDoc(b.docs[i])
				}
				close(b.done)
			}
		})
	}
	return s
}

// emit queues a document for decoding.
func (s *stream) emit(d rawDoc) {
	if s.current == nil {
		s.current = &batch{docs: make([]rawDoc, 0, batchSize), done: make(chan struct{})}
	}
	s.current.docs = append(s.current.docs, d)
	if len(s.current.docs) == batchSize {
		s.flush()
	}
}

// emitProblem queues a problem found while splitting, so problems stay in document order.
func (s *stream) emitProblem(p Problem) {
	s.emit(rawDoc{problem: &p, source: p.Source})
}

func (s *stream) flush() {
	if s.current == nil {
		return
	}
	s.batches = append(s.batches, s.current)
	s.work <- s.current
	s.current = nil
}

// drain ends the input and calls add for every decoded document, in input order, as soon as
// its batch is decoded.
func (s *stream) drain(add func(decoded)) {
	s.flush()
	close(s.work)
	for _, b := range s.batches {
		<-b.done
		for i := range b.out {
			doc := &b.docs[i]
			if doc.discard != nil && doc.discard.Load() {
				continue
			}
			out := b.out[i]
			if out.kindless && doc.list != nil && doc.list.kind != "" {
				// An item of a typed list without its own kind: decode it again with the
				// list's, known now that the list has been read to its end.
				d := *doc
				d.listAPIVersion, d.listKind = doc.list.apiVersion, doc.list.kind
				out = decodeDoc(d)
			}
			add(out)
		}
		b.docs, b.out = nil, nil // let the collector have them while later batches are added
	}
	s.workers.Wait()
}

// discardFlag marks the speculatively emitted items of one object.
type discardFlag = atomic.Bool

// listInfo is the apiVersion and item kind of a typed list (PodList → v1, Pod); empty for a
// plain List. It is written when the list ends, and read only by stream.drain.
type listInfo struct{ apiVersion, kind string }
