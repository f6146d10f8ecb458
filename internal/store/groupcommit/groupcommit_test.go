package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// memDB is a fake backend: a set of committed keys; a transaction buffers
// its keys and publishes them on Commit.
type memDB struct {
	mu        sync.Mutex
	committed map[string]bool
	txSizes   []int // batches per committed transaction
	gate      chan struct{}
	entered   chan struct{} // signalled when a commit starts waiting on gate
	beginErr  error
}

func newMemDB() *memDB { return &memDB{committed: map[string]bool{}} }

type memTx struct {
	db      *memDB
	keys    []string
	batches int
	done    bool
}

// batch keys: "bad" fails the transaction, "reject" is refused alone.
type batch []string

func (db *memDB) begin(ctx context.Context) (Tx[batch, int], error) {
	if db.beginErr != nil {
		return nil, db.beginErr
	}
	return &memTx{db: db}, nil
}

func (t *memTx) Apply(ctx context.Context, b batch) (int, error) {
	for _, k := range b {
		switch k {
		case "bad":
			return 0, errors.New("bad item")
		case "reject":
			return 0, Rejected(errors.New("refused"))
		}
	}
	t.keys = append(t.keys, b...)
	t.batches++
	return len(b), nil
}

func (t *memTx) Commit(ctx context.Context) error {
	if t.db.gate != nil {
		if t.db.entered != nil {
			t.db.entered <- struct{}{}
		}
		<-t.db.gate
	}
	t.db.mu.Lock()
	defer t.db.mu.Unlock()
	for _, k := range t.keys {
		t.db.committed[k] = true
	}
	t.db.txSizes = append(t.db.txSizes, t.batches)
	t.done = true
	return nil
}

func (t *memTx) Rollback() error { t.done = true; return nil }

func (db *memDB) has(k string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.committed[k]
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// blocked starts a committer whose first commit waits until release is
// called, so the test can queue requests behind it.
func blocked(t *testing.T, db *memDB, opt Options) (c *Committer[batch, int], release func()) {
	db.gate = make(chan struct{})
	db.entered = make(chan struct{}, 1)
	opt.Log = quiet()
	c = New(db.begin, opt)
	go c.Do(context.Background(), batch{"first"}, 1)
	<-db.entered
	db.entered = nil
	var once sync.Once
	release = func() { once.Do(func() { close(db.gate) }) }
	t.Cleanup(release)
	return c, release
}

// waitQueued waits until n requests are queued.
func waitQueued(t *testing.T, c *Committer[batch, int], n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		q := len(c.queue)
		c.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests queued", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSharesTransactions(t *testing.T) {
	db := newMemDB()
	c, release := blocked(t, db, Options{})
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.Do(context.Background(), batch{fmt.Sprint(i)}, 1)
		})
	}
	waitQueued(t, c, n)
	release()
	wg.Wait()
	c.Close()
	for i, err := range errs {
		if err != nil || !db.has(fmt.Sprint(i)) {
			t.Errorf("batch %d: err %v, stored %v", i, err, db.has(fmt.Sprint(i)))
		}
	}
	// The first transaction held "first" alone; the 50 queued behind it share one.
	if len(db.txSizes) != 2 || db.txSizes[1] != n {
		t.Errorf("transactions = %v, want [1 %d]", db.txSizes, n)
	}
	if st := c.Stats(); st.Transactions != 2 || st.Batches != n+1 || st.Failed != 0 || st.Retries != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestBadBatchRetriedAlone(t *testing.T) {
	db := newMemDB()
	c, release := blocked(t, db, Options{})
	var wg sync.WaitGroup
	results := map[string]error{}
	var mu sync.Mutex
	for _, b := range []batch{{"a1", "a2"}, {"b1", "bad", "b3"}, {"c1"}} {
		wg.Go(func() {
			_, err := c.Do(context.Background(), b, len(b))
			mu.Lock()
			results[b[0]] = err
			mu.Unlock()
		})
	}
	waitQueued(t, c, 3)
	release()
	wg.Wait()
	c.Close()
	if results["a1"] != nil || results["c1"] != nil || results["b1"] == nil {
		t.Errorf("results = %v, want only the b batch to fail", results)
	}
	for k, want := range map[string]bool{"a1": true, "a2": true, "c1": true, "b1": false, "b3": false} {
		if db.has(k) != want {
			t.Errorf("%s stored = %v, want %v", k, db.has(k), want)
		}
	}
	if st := c.Stats(); st.Retries != 1 || st.Failed != 1 {
		t.Errorf("stats = %+v, want 1 retry, 1 failed", st)
	}
}

func TestRejectedKeepsSharedTransaction(t *testing.T) {
	db := newMemDB()
	c, release := blocked(t, db, Options{})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, b := range []batch{{"a"}, {"reject"}, {"c"}} {
		wg.Go(func() { _, errs[i] = c.Do(context.Background(), b, 1) })
		waitQueued(t, c, i+1) // keep the order
	}
	release()
	wg.Wait()
	c.Close()
	if errs[0] != nil || errs[2] != nil || errs[1] == nil || errs[1].Error() != "refused" {
		t.Errorf("errs = %v", errs)
	}
	if len(db.txSizes) != 2 || db.txSizes[1] != 2 {
		t.Errorf("transactions = %v, want the two good batches in one", db.txSizes)
	}
	if st := c.Stats(); st.Retries != 0 {
		t.Errorf("a rejected batch caused a retry: %+v", st)
	}
}

func TestCancelBeforeTakeNotWritten(t *testing.T) {
	db := newMemDB()
	c, release := blocked(t, db, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, batch{"gone"}, 1)
		done <- err
	}()
	waitQueued(t, c, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Do after cancel = %v, want context.Canceled", err)
	}
	release()
	if _, err := c.Do(context.Background(), batch{"after"}, 1); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if db.has("gone") {
		t.Error("a batch cancelled before the committer took it was written")
	}
	if _, err := c.Do(ctx, batch{"x"}, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled ctx = %v", err)
	}
}

func TestCloseFinishesPending(t *testing.T) {
	db := newMemDB()
	c, release := blocked(t, db, Options{})
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() { _, errs[i] = c.Do(context.Background(), batch{fmt.Sprint(i)}, 1) })
	}
	waitQueued(t, c, 10)
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a transaction was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	release()
	<-closed
	wg.Wait()
	for i, err := range errs {
		if err != nil || !db.has(fmt.Sprint(i)) {
			t.Errorf("pending batch %d at Close: err %v, stored %v", i, err, db.has(fmt.Sprint(i)))
		}
	}
	if _, err := c.Do(context.Background(), batch{"late"}, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	c.Close() // twice is fine
}

func TestMaxItemsSplits(t *testing.T) {
	db := newMemDB()
	c, release := blocked(t, db, Options{MaxItems: 10})
	var wg sync.WaitGroup
	for i := range 6 {
		b := batch{fmt.Sprint(i, "a"), fmt.Sprint(i, "b"), fmt.Sprint(i, "c"), fmt.Sprint(i, "d")}
		wg.Go(func() {
			if _, err := c.Do(context.Background(), b, len(b)); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, c, 6)
	release()
	wg.Wait()
	c.Close()
	// 6 batches of 4 items with at most 10 items per transaction: 2+2+2.
	if fmt.Sprint(db.txSizes) != "[1 2 2 2]" {
		t.Errorf("transactions = %v, want [1 2 2 2]", db.txSizes)
	}
}

func TestBeginFailure(t *testing.T) {
	db := newMemDB()
	db.beginErr = errors.New("disk gone")
	c := New(db.begin, Options{Log: quiet()})
	defer c.Close()
	if _, err := c.Do(context.Background(), batch{"a"}, 1); err == nil || !errors.Is(err, db.beginErr) {
		t.Errorf("Do with a failing begin = %v", err)
	}
}

// panicTx panics in Apply; the committer must survive and answer.
type panicTx struct{ memTx }

func (p *panicTx) Apply(context.Context, batch) (int, error) { panic("boom") }

func TestPanicInApply(t *testing.T) {
	c := New(func(context.Context) (Tx[batch, int], error) { return &panicTx{}, nil }, Options{Log: quiet()})
	defer c.Close()
	if _, err := c.Do(context.Background(), batch{"a"}, 1); err == nil {
		t.Error("panicking Apply: no error")
	}
	if _, err := c.Do(context.Background(), batch{"b"}, 1); err == nil {
		t.Error("second call: no error (committer should still answer)")
	}
}

// pipeDB is a backend whose transactions are Preparers: Prepare records
// the keys as written, Commit waits at the gate of its transaction (in the
// order they began) and makes them durable; "late" fails at commit.
type pipeDB struct {
	mu       sync.Mutex
	prepared []string // keys of every prepared transaction, in order
	durable  map[string]bool
	gates    []chan struct{} // one per transaction, closed to let it commit
	inCommit chan int        // the number of each transaction entering Commit
	open     int             // transactions begun and not ended
	maxOpen  int
}

type pipeTx struct {
	db   *pipeDB
	n    int
	keys []string
	done bool
}

func (db *pipeDB) begin(context.Context) (Tx[batch, int], error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.open++
	db.maxOpen = max(db.maxOpen, db.open)
	db.gates = append(db.gates, make(chan struct{}))
	return &pipeTx{db: db, n: len(db.gates) - 1}, nil
}

func (t *pipeTx) Apply(_ context.Context, b batch) (int, error) {
	t.keys = append(t.keys, b...)
	return len(b), nil
}

func (t *pipeTx) Prepare(context.Context) error {
	t.db.mu.Lock()
	defer t.db.mu.Unlock()
	t.db.prepared = append(t.db.prepared, t.keys...)
	return nil
}

func (t *pipeTx) Commit(context.Context) error {
	t.db.inCommit <- t.n
	t.db.mu.Lock()
	gate := t.db.gates[t.n]
	t.db.mu.Unlock()
	<-gate
	t.db.mu.Lock()
	defer t.db.mu.Unlock()
	t.db.open--
	t.done = true
	for _, k := range t.keys {
		if k == "late" {
			return errors.New("flush failed")
		}
	}
	for _, k := range t.keys {
		t.db.durable[k] = true
	}
	return nil
}

func (t *pipeTx) Rollback() error {
	if !t.done {
		t.db.mu.Lock()
		t.db.open--
		t.db.mu.Unlock()
		t.done = true
	}
	return nil
}

func (db *pipeDB) release(n int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	close(db.gates[n])
}

func (db *pipeDB) has(k string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.durable[k]
}

// TestPipelinedCommits: with InFlight 2 the next transaction is written
// while the one before waits for its commit, never more than two at once,
// and nobody is answered before their own transaction is durable.
func TestPipelinedCommits(t *testing.T) {
	db := &pipeDB{durable: map[string]bool{}, inCommit: make(chan int, 16)}
	c := New(db.begin, Options{InFlight: 2, Log: quiet()})
	defer c.Close()
	answered := make(chan string, 16)
	do := func(k string) {
		go func() {
			if _, err := c.Do(context.Background(), batch{k}, 1); err != nil {
				t.Errorf("%s: %v", k, err)
			}
			answered <- k
		}()
	}
	do("a")
	if n := <-db.inCommit; n != 0 {
		t.Fatalf("transaction %d committing first", n)
	}
	// a waits for its flush; b is written meanwhile and waits too
	do("b")
	if n := <-db.inCommit; n != 1 {
		t.Fatalf("transaction %d committing second", n)
	}
	// both slots are taken: c and d queue up and share the next one
	do("c")
	do("d")
	waitQueued(t, c, 2)
	select {
	case k := <-answered:
		t.Fatalf("%s answered before its commit", k)
	case <-time.After(50 * time.Millisecond):
	}
	db.release(1) // b's flush ends first: b is answered, a is not
	if k := <-answered; k != "b" || db.has("a") || !db.has("b") {
		t.Fatalf("answered %q first; durable a=%v b=%v", k, db.has("a"), db.has("b"))
	}
	if n := <-db.inCommit; n != 2 {
		t.Fatalf("transaction %d committing third", n)
	}
	db.release(0)
	db.release(2)
	got := map[string]bool{}
	for range 3 {
		got[<-answered] = true
	}
	if !got["a"] || !got["c"] || !got["d"] {
		t.Fatalf("answered %v", got)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.maxOpen != 2 || len(db.gates) != 3 {
		t.Errorf("%d transactions open at most, %d in all; want 2 and 3 (c and d shared one)", db.maxOpen, len(db.gates))
	}
	if st := c.Stats(); st.Transactions != 3 || st.Batches != 4 {
		t.Errorf("stats = %+v", st)
	}
}

// TestPipelinedCommitFailureRetried: a prepared group whose commit fails
// is retried batch by batch, so only the bad batch fails.
func TestPipelinedCommitFailureRetried(t *testing.T) {
	db := &pipeDB{durable: map[string]bool{}, inCommit: make(chan int, 16)}
	c := New(db.begin, Options{InFlight: 2, Log: quiet()})
	defer c.Close()
	// hold a first transaction so that the next three share one
	errs := make(chan error, 1)
	go func() { _, err := c.Do(context.Background(), batch{"x"}, 1); errs <- err }()
	<-db.inCommit
	go func() { _, err := c.Do(context.Background(), batch{"y"}, 1); errs <- err }()
	<-db.inCommit
	res := make(map[string]chan error)
	for _, k := range []string{"p", "late", "q"} {
		ch := make(chan error, 1)
		res[k] = ch
		go func() { _, err := c.Do(context.Background(), batch{k}, 1); ch <- err }()
	}
	waitQueued(t, c, 3)
	db.release(0)
	db.release(1)
	for n := range db.inCommit { // the shared transaction, then one per batch
		db.release(n)
		if n == 5 {
			break
		}
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"p", "q"} {
		if err := <-res[k]; err != nil || !db.has(k) {
			t.Errorf("%s: %v, durable %v", k, err, db.has(k))
		}
	}
	if err := <-res["late"]; err == nil || !strings.Contains(err.Error(), "flush failed") {
		t.Errorf("late: %v, want the commit's error", err)
	}
	if st := c.Stats(); st.Retries != 1 || st.Failed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestSecondTransactionWaitsForWork: while a group of 10 waits for its
// commit, a second transaction starts only once as many readings wait;
// one lone reading waits for the first commit instead of costing a
// statement and a flush of its own.
func TestSecondTransactionWaitsForWork(t *testing.T) {
	db := &pipeDB{durable: map[string]bool{}, inCommit: make(chan int, 16)}
	c := New(db.begin, Options{InFlight: 2, Log: quiet()})
	defer c.Close()
	done := make(chan error, 32)
	do := func(k string, size int) {
		go func() { _, err := c.Do(context.Background(), batch{k}, size); done <- err }()
	}
	do("big", 10)
	<-db.inCommit
	do("lone", 1)
	waitQueued(t, c, 1)
	select {
	case n := <-db.inCommit:
		t.Fatalf("transaction %d began for one item while 10 wait for their commit", n)
	case <-time.After(100 * time.Millisecond):
	}
	for i := range 8 {
		do(fmt.Sprint("more", i), 1)
	}
	waitQueued(t, c, 9)
	select {
	case n := <-db.inCommit:
		t.Fatalf("transaction %d began for 9 items while 10 wait for their commit", n)
	case <-time.After(50 * time.Millisecond):
	}
	do("tenth", 1)
	if n := <-db.inCommit; n != 1 {
		t.Fatalf("transaction %d, want the second", n)
	}
	db.release(0)
	db.release(1)
	for range 11 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if len(db.gates) != 2 || !db.durable["lone"] || !db.durable["tenth"] {
		t.Errorf("%d transactions, durable %v", len(db.gates), db.durable)
	}
}

// TestLoneItemStartsWhenFirstCommits: the waiting item goes as soon as the
// transaction in flight ends.
func TestLoneItemStartsWhenFirstCommits(t *testing.T) {
	db := &pipeDB{durable: map[string]bool{}, inCommit: make(chan int, 16)}
	c := New(db.begin, Options{InFlight: 2, Log: quiet()})
	defer c.Close()
	done := make(chan error, 2)
	go func() { _, err := c.Do(context.Background(), batch{"big"}, 10); done <- err }()
	<-db.inCommit
	go func() { _, err := c.Do(context.Background(), batch{"lone"}, 1); done <- err }()
	waitQueued(t, c, 1)
	db.release(0)
	if n := <-db.inCommit; n != 1 {
		t.Fatalf("transaction %d, want the second", n)
	}
	db.release(1)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if !db.has("lone") {
		t.Error("lone item not stored")
	}
}

// TestRetryDoesNotHoldUpNewWork: while a failed group is retried batch by
// batch (each retry a transaction of its own, which may take long), a new
// request starts at once on the other connection instead of waiting for
// as many items as the failed group held.
func TestRetryDoesNotHoldUpNewWork(t *testing.T) {
	db := &pipeDB{durable: map[string]bool{}, inCommit: make(chan int, 16)}
	c := New(db.begin, Options{InFlight: 2, Log: quiet()})
	defer c.Close()
	errs := make(map[string]chan error)
	doSized := func(k string, size int) {
		ch := make(chan error, 1)
		errs[k] = ch
		go func() { _, err := c.Do(context.Background(), batch{k}, size); ch <- err }()
	}
	do := func(k string) { doSized(k, 1) }
	doSized("a", 10) // a group of 10 in flight: late and p (2) wait for it
	if n := <-db.inCommit; n != 0 {
		t.Fatalf("transaction %d", n)
	}
	do("late")
	do("p")
	waitQueued(t, c, 2)
	db.release(0) // late and p now go together
	if n := <-db.inCommit; n != 1 {
		t.Fatalf("transaction %d, want the shared one", n)
	}
	db.release(1) // its commit fails: late is retried alone first
	if n := <-db.inCommit; n != 2 {
		t.Fatalf("transaction %d, want late's retry", n)
	}
	do("new") // one item, while the retry of late waits for its commit
	select {
	case n := <-db.inCommit:
		if n != 3 {
			t.Fatalf("transaction %d, want new's", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a new request waited for the retry of a failed group")
	}
	db.release(3)
	db.release(2)
	if n := <-db.inCommit; n != 4 { // p's retry
		t.Fatalf("transaction %d, want p's retry", n)
	}
	db.release(4)
	for k, want := range map[string]bool{"a": true, "p": true, "new": true, "late": false} {
		if err := <-errs[k]; (err == nil) != want {
			t.Errorf("%s: %v", k, err)
		}
	}
}
