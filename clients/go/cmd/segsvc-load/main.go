// Command segsvc-load is the benchmark's closed-loop load client (bench/go_load.py). It
// sends the workloads of bench/workloads.py from goroutines instead of Python threads:
// on a 2-core machine the Python client took 0.4-0.5 of the cores the server under test
// needed, which lowered the very figures it measured.
//
// -callers goroutines each keep one call in flight. Every -callers-per-connection of them
// share a grpc.ClientConn, each its own TCP connection: the server's worker processes
// share the port with SO_REUSEPORT, which spreads connections, not calls. Replies are not
// parsed, only their status is read, as the Python client receives raw bytes.
//
// Protocol with the parent process: once every connection is READY it prints `ready`.
// Then each stdin line `<seconds> <kind>` runs one round of that workload and prints one
// JSON line (calls, errors, seconds, p50_ms, p99_ms, client_cpu_seconds, first_error).
// The connections stay open across rounds; EOF on stdin ends the process.
//
//	SEGSVC_TOKEN=... segsvc-load -target 127.0.0.1:50051 -callers 64 -users 1000000
//	segsvc-load -users 10 -print-ids 5 zipf  # the ids caller 0 would send first
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/segsvc/segsvc/clients/go/segmentation/v1"
)

// The constants of bench/workloads.py and bench/load.py, which this must keep matching.
const (
	userService        = "/segmentation.v1.UserService/"
	healthCheck        = "/grpc.health.v1.Health/Check"
	batchSize          = 100
	writeShare         = 0.05
	updateTTLSeconds   = 3600 // nothing expires during a run: the sweeper is not under test
	spread             = 1_000_003
	callTimeout        = 10 * time.Second
	startTimeout       = 60 * time.Second
	seedStride         = 1000 // caller i of a round with seed s draws from seed s*1000+i
	getMethod          = "GetUserSegments"
	batchMethod        = "BatchGetUserSegments"
	updateMethod       = "UpdateUserSegments"
	healthMethod       = "Check"
	defaultTarget      = "127.0.0.1:50051"
	usageExit, runExit = 2, 1
)

var kinds = []string{"uniform", "zipf", "batch", "update", "mix", "empty"}

// Python's spelling of the status codes (grpc.StatusCode names), so first_error reads
// the same whichever client ran the round.
var codeNames = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// call is one request of a caller's stream: the RPC's name (for first_error), its path
// and its message.
type call struct {
	method  string
	path    string
	request proto.Message
}

func userCall(method string, request proto.Message) call {
	return call{method, userService + method, request}
}

// workload is a traffic shape over users 1..users and segments SEG_0001..; zipf holds
// the cumulative Zipf weights, built before the first round's clock.
type workload struct {
	kind     string
	users    int64
	segments int64
	zipf     []float64
}

// zipfTables are the cumulative weights by user count, built once per process as
// bench/workloads.py builds them (8 MB at a million users, shared by zipf and mix).
var zipfTables = map[int64][]float64{}

func newWorkload(kind string, users, segments int64) (*workload, error) {
	for _, known := range kinds {
		if kind == known {
			w := &workload{kind: kind, users: users, segments: segments}
			if kind == "zipf" || kind == "mix" {
				if zipfTables[users] == nil {
					zipfTables[users] = zipfCDF(users)
				}
				w.zipf = zipfTables[users]
			}
			return w, nil
		}
	}
	return nil, fmt.Errorf("unknown workload %q; choose from %s", kind, strings.Join(kinds, ", "))
}

// zipfCDF is 1/1, 1/1 + 1/2, ... (exponent 1.0), summed in the order Python's
// itertools.accumulate sums them, so both clients cut the same boundaries.
func zipfCDF(users int64) []float64 {
	cdf := make([]float64, users)
	total := 0.0
	for rank := int64(1); rank <= users; rank++ {
		total += 1.0 / float64(rank)
		cdf[rank-1] = total
	}
	return cdf
}

// zipfID draws a rank (0-based, as bisect_left finds it) and maps it to an id by a fixed
// permutation, so the hot users are spread over the id space instead of being 1, 2, 3.
func (w *workload) zipfID(rng *rand.Rand) int64 {
	rank := int64(sort.SearchFloat64s(w.zipf, rng.Float64()*w.zipf[len(w.zipf)-1]))
	step := int64(spread)
	if w.users%spread == 0 {
		step = 1
	}
	return rank*step%w.users + 1
}

func (w *workload) uniformID(rng *rand.Rand) int64 {
	return 1 + rng.Int63n(w.users)
}

func (w *workload) slug(rng *rand.Rand, exclude ...string) string {
	for {
		slug := fmt.Sprintf("SEG_%04d", 1+rng.Int63n(w.segments))
		taken := false
		for _, other := range exclude {
			taken = taken || slug == other
		}
		if !taken {
			return slug
		}
	}
}

// update adds two segments with a TTL and removes a third, all distinct.
func (w *workload) update(userID int64, rng *rand.Rand) call {
	first := w.slug(rng)
	second := w.slug(rng, first)
	removed := w.slug(rng, first, second)
	ttl := &pb.SegmentAddition_Ttl{Ttl: &durationpb.Duration{Seconds: updateTTLSeconds}}
	return userCall(updateMethod, &pb.UpdateUserSegmentsRequest{
		UserId: userID,
		Add:    []*pb.SegmentAddition{{Slug: first, Expiry: ttl}, {Slug: second, Expiry: ttl}},
		Remove: []string{removed},
	})
}

func read(userID int64) call {
	return userCall(getMethod, &pb.GetUserSegmentsRequest{UserId: userID})
}

// next draws a caller's next request, as bench.workloads.calls does in Python.
func (w *workload) next(rng *rand.Rand) call {
	switch w.kind {
	case "uniform":
		return read(w.uniformID(rng))
	case "zipf":
		return read(w.zipfID(rng))
	case "batch":
		ids := make([]int64, batchSize)
		for i := range ids {
			ids[i] = w.uniformID(rng)
		}
		return userCall(batchMethod, &pb.BatchGetUserSegmentsRequest{UserIds: ids})
	case "update":
		return w.update(w.uniformID(rng), rng)
	case "mix":
		userID := w.zipfID(rng)
		if rng.Float64() < writeShare {
			return w.update(userID, rng)
		}
		return read(userID)
	default: // "empty"
		return call{healthMethod, healthCheck, &healthv1.HealthCheckRequest{}}
	}
}

// userIDs are the ids a request carries (for -print-ids).
func (c call) userIDs() []int64 {
	switch r := c.request.(type) {
	case *pb.GetUserSegmentsRequest:
		return []int64{r.UserId}
	case *pb.BatchGetUserSegmentsRequest:
		return r.UserIds
	case *pb.UpdateUserSegmentsRequest:
		return []int64{r.UserId}
	}
	return nil
}

// unparsed marshals requests as gRPC's proto codec does and drops every reply unread:
// the benchmark needs only the status, and parsing a batch of 100 users cost the client
// more CPU than the rest of the call.
type unparsed struct{}

func (unparsed) Marshal(v interface{}) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }
func (unparsed) Unmarshal([]byte, interface{}) error   { return nil }
func (unparsed) Name() string                          { return "proto" }

// reply is where a reply is not parsed into.
type reply struct{}

// share is what one caller saw in a round.
type share struct {
	latencies  []float64 // seconds, successful calls only
	errors     int
	firstError string
}

// drive keeps one call in flight until `until`; like bench/load.py's _caller, the clock
// of a call starts before its request is drawn.
func drive(ctx context.Context, conn *grpc.ClientConn, w *workload, rng *rand.Rand, until time.Time) share {
	var out share
	var discarded reply
	for {
		started := time.Now()
		if !started.Before(until) {
			return out
		}
		c := w.next(rng)
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		err := conn.Invoke(callCtx, c.path, c.request, &discarded)
		cancel()
		if err != nil {
			out.errors++
			if out.firstError == "" {
				st := status.Convert(err)
				out.firstError = fmt.Sprintf("%s: %s %s", c.method, codeNames[st.Code()], st.Message())
			}
			continue
		}
		out.latencies = append(out.latencies, time.Since(started).Seconds())
	}
}

// roundResult is the JSON line of one round (bench/go_load.py reads it).
type roundResult struct {
	Calls            int     `json:"calls"`
	Errors           int     `json:"errors"`
	Seconds          float64 `json:"seconds"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	FirstError       string  `json:"first_error"`
}

// percentiles are bench/load.py's summarize: p50 the median (the mean of the middle two
// of an even count), p99 ordered[min(n-1, int(n*0.99))]; milliseconds.
func percentiles(latencies []float64) (p50, p99 float64) {
	n := len(latencies)
	if n == 0 {
		return 0, 0
	}
	ordered := append([]float64(nil), latencies...)
	sort.Float64s(ordered)
	if n%2 == 1 {
		p50 = ordered[n/2]
	} else {
		p50 = (ordered[n/2-1] + ordered[n/2]) / 2
	}
	index := int(float64(n) * 0.99)
	if index > n-1 {
		index = n - 1
	}
	return p50 * 1000, ordered[index] * 1000
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	seconds := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}

// loader holds the connections and the seed, which advances every round (as the Python
// workers' does) so a warm-up round and the measured one draw different ids.
type loader struct {
	ctx     context.Context // carries the authorization metadata
	conns   []*grpc.ClientConn
	callers int
	seed    int64
}

func (l *loader) round(seconds float64, w *workload) roundResult {
	cpu, started := cpuSeconds(), time.Now()
	until := started.Add(time.Duration(seconds * float64(time.Second)))
	shares := make([]share, l.callers)
	var wg sync.WaitGroup
	for i := range shares {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(l.seed*seedStride + int64(i)))
			shares[i] = drive(l.ctx, l.conns[i%len(l.conns)], w, rng, until)
		}(i)
	}
	wg.Wait()
	span := time.Since(started).Seconds()
	l.seed++
	var latencies []float64
	result := roundResult{Seconds: span, ClientCPUSeconds: cpuSeconds() - cpu}
	for _, s := range shares {
		latencies = append(latencies, s.latencies...)
		result.Errors += s.errors
		if result.FirstError == "" {
			result.FirstError = s.firstError
		}
	}
	result.Calls = len(latencies)
	result.P50Ms, result.P99Ms = percentiles(latencies)
	return result
}

// connect opens `count` connections and waits until every one is READY, as
// grpc.channel_ready_future does for the Python client.
func connect(target string, count int) ([]*grpc.ClientConn, error) {
	conns := make([]*grpc.ClientConn, 0, count)
	for i := 0; i < count; i++ {
		conn, err := grpc.Dial(target, grpc.WithInsecure(),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(unparsed{})))
		if err != nil {
			return conns, err
		}
		conns = append(conns, conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for _, conn := range conns {
		for state := conn.GetState(); state != connectivity.Ready; state = conn.GetState() {
			if !conn.WaitForStateChange(ctx, state) {
				return conns, fmt.Errorf("cannot connect to %s: %s after %s", target, state, startTimeout)
			}
		}
	}
	return conns, nil
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "segsvc-load: "+format+"\n", args...)
	os.Exit(code)
}

// printIDs writes the user ids of caller 0's first n requests of the first round, one
// request a line: a check that the draws match bench/workloads.py's distribution.
func printIDs(w *workload, seed int64, n int) {
	rng := rand.New(rand.NewSource(seed * seedStride))
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := 0; i < n; i++ {
		ids := w.next(rng).userIDs()
		text := make([]string, len(ids))
		for j, id := range ids {
			text[j] = strconv.FormatInt(id, 10)
		}
		fmt.Fprintln(out, strings.Join(text, " "))
	}
}

// serve runs the rounds stdin asks for until EOF.
func serve(l *loader, users, segments int64) {
	workloads := map[string]*workload{}
	encoder := json.NewEncoder(os.Stdout) // one Write per line, newline included
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		fields := strings.Fields(lines.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			fail(usageExit, "bad command %q: want `<seconds> <kind>`", lines.Text())
		}
		seconds, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || seconds <= 0 {
			fail(usageExit, "bad round length %q", fields[0])
		}
		w, ok := workloads[fields[1]]
		if !ok {
			if w, err = newWorkload(fields[1], users, segments); err != nil {
				fail(usageExit, "%v", err)
			}
			workloads[fields[1]] = w
		}
		if err := encoder.Encode(l.round(seconds, w)); err != nil {
			fail(runExit, "writing a result: %v", err)
		}
	}
	if err := lines.Err(); err != nil {
		fail(runExit, "reading commands: %v", err)
	}
}

func main() {
	target := flag.String("target", defaultTarget, "segsvc address")
	token := flag.String("token", "", "bearer token sent with every call (default $SEGSVC_TOKEN)")
	callers := flag.Int("callers", 64, "closed-loop callers, one call in flight each")
	perConnection := flag.Int("callers-per-connection", 4, "callers sharing one connection")
	users := flag.Int64("users", 0, "user ids 1..users")
	segments := flag.Int64("segments", 1000, "segments SEG_0001..")
	seed := flag.Int64("seed", 1, "seed of the first round (caller i: seed*1000+i)")
	printCount := flag.Int("print-ids", 0, "debugging: print the ids of caller 0's first N calls of the workload named after the flags, then exit")
	flag.Parse()
	if *users < 1 || *segments < 3 || *callers < 1 || *perConnection < 1 {
		fail(usageExit, "need -users >= 1, -segments >= 3 (an update names 3), -callers >= 1, -callers-per-connection >= 1")
	}
	if *printCount > 0 {
		w, err := newWorkload(flag.Arg(0), *users, *segments)
		if err != nil {
			fail(usageExit, "-print-ids N KIND: %v", err)
		}
		if w.kind == "empty" {
			fail(usageExit, "-print-ids N KIND: the empty workload sends no user ids")
		}
		printIDs(w, *seed, *printCount)
		return
	}
	if *token == "" {
		*token = os.Getenv("SEGSVC_TOKEN")
	}
	// Ctrl-C is the parent's to handle: it ends this process by closing stdin.
	signal.Ignore(os.Interrupt)

	conns, err := connect(*target, (*callers+*perConnection-1) / *perConnection)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	if err != nil {
		fail(runExit, "%v", err)
	}
	l := &loader{ctx: context.Background(), conns: conns, callers: *callers, seed: *seed}
	if *token != "" {
		l.ctx = metadata.AppendToOutgoingContext(l.ctx, "authorization", "Bearer "+*token)
	}
	fmt.Println("ready")
	serve(l, *users, *segments)
}
