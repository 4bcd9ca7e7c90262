// Command chatbench measures a chat server that speaks chatd's classic
// protocol (NAME handshake, newline-terminated lines), and, in the same run,
// a bare reference broadcast server, so that every figure can be given as a
// ratio to what a plain Go server reaches on the same machine.
//
//	chatbench fanout  --addr 127.0.0.1:5500 --conns 1000 --senders 10 --duration 10s
//	chatbench latency --addr 127.0.0.1:5500 --conns 500 --rate 1000 --duration 10s
//	chatbench idle    --addr 127.0.0.1:5500 --pid $(pgrep -n chatd) --conns 10000 --room-size 100
//	chatbench cross   --addr 127.0.0.1:5500 --addr2 127.0.0.1:5501 --conns 500 --rate 1000
//	chatbench churn   --addr 127.0.0.1:5500 --conns 200 --rate 200 --churn-rate 100
//	chatbench crash   --addr 127.0.0.1:5500 --addr2 127.0.0.1:5501,127.0.0.1:5502 --pid PID_OF_5500 --conns 5000
//	chatbench ref     --listen 127.0.0.1:5599
//
// Every run is bounded in time (--duration, --timeout) and count
// (--max-lines, --churn-max, --conns). Progress goes to stderr; the result is
// one JSON line on stdout. Targets must be loopback addresses. See
// docs/performance.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the flags of every scenario; each uses the ones it needs.
type options struct {
	Addr        string        `json:"addr,omitempty"`
	Addr2       string        `json:"addr2,omitempty"`
	PID         int           `json:"pid,omitempty"`
	Ref         string        `json:"ref"`
	RefPID      int           `json:"ref_pid,omitempty"`
	RefKind     string        `json:"ref_kind"`
	NgIRCd      string        `json:"ngircd,omitempty"`
	NgIRCdPID   int           `json:"ngircd_pid,omitempty"`
	Conns       int           `json:"conns"`
	Senders     int           `json:"senders,omitempty"`
	Window      int           `json:"window,omitempty"`
	Rate        float64       `json:"rate,omitempty"`
	Size        int           `json:"size,omitempty"`
	Duration    time.Duration `json:"-"`
	Warmup      time.Duration `json:"-"`
	MaxLines    int64         `json:"max_lines,omitempty"`
	Room        string        `json:"room,omitempty"`
	RoomSize    int           `json:"room_size,omitempty"`
	Sources     int           `json:"sources,omitempty"`
	Concurrency int           `json:"concurrency,omitempty"`
	Settle      time.Duration `json:"-"`
	Hold        time.Duration `json:"-"`
	ChurnRate   float64       `json:"churn_rate,omitempty"`
	ChurnMax    int           `json:"churn_max,omitempty"`
	Timeout     time.Duration `json:"-"`
	Nick        string        `json:"nick_prefix"`
	Proto       string        `json:"proto,omitempty"`
	Rounds      int           `json:"rounds,omitempty"`
	Quiet       bool          `json:"-"`

	DurationS float64 `json:"duration_s"`
	WarmupS   float64 `json:"warmup_s,omitempty"`
	SettleS   float64 `json:"settle_s,omitempty"`
	HoldS     float64 `json:"hold_s,omitempty"`
}

// target is one server under measurement.
type target struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
	PID   int      `json:"pid,omitempty"`
	IRC   bool     `json:"irc,omitempty"` // its clients speak IRC
	stop  func()
}

// summary is the one JSON line a scenario prints.
type summary struct {
	Scenario string               `json:"scenario"`
	Params   options              `json:"params"`
	Runs     []any                `json:"runs"`
	Ratio    map[string]float64   `json:"ratio_to_reference,omitempty"` // the measured server ÷ the strong reference
	Rounds   []map[string]float64 `json:"ratio_per_round,omitempty"`
	// RatioTo holds the measured server's ratios to every other target
	// but the strong reference (the simple reference, ngIRCd), by name.
	RatioTo  map[string]map[string]float64   `json:"ratio_to,omitempty"`
	roundsTo []map[string]map[string]float64 // RatioTo of each round
	OK       bool                            `json:"ok"`
	Problems []string                        `json:"problems,omitempty"`
}

var scenarios = map[string]func(ctx context.Context, o *options, targets []*target) (*summary, error){
	"fanout":  runFanout,
	"latency": runLatency,
	"idle":    runIdle,
	"cross":   runCross,
	"churn":   runChurn,
	"crash":   runCrash,
}

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	name, args := os.Args[1], os.Args[2:]
	var err error
	switch name {
	case "ref":
		err = runRef(ctx, args, os.Stdout)
	case "ngircd-conf":
		err = runNgIRCdConf(args, os.Stdout)
	default:
		err = runScenario(ctx, name, args, os.Stdout)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: chatbench SCENARIO [flags]     (chatbench SCENARIO --help lists flags)

scenarios:
  fanout   C clients in one room, S of them send as fast as a window of
           unacknowledged lines lets them: deliveries/s, lines/s, loss
  latency  C clients in one room, a fixed total rate R: p50/p90/p99/max, loss, order
  idle     C idle connections in rooms of K: server RSS per connection, handshakes/s
  cross    senders on --addr, receivers on --addr2: latency across gateways
  churn    connects/disconnects per second while chat flows
  crash    C users in rooms of K on --addr, whose process (--pid) is then
           killed (SIGKILL); they come back on --addr2's gateways: time to
           all back, left!/joined! once each (no reference)
  ref      run a reference broadcast server alone (--listen ADDR --kind strong|simple)
  ngircd-conf  print an ngIRCd configuration for measuring it (--listen ADDR)

Each scenario runs against the references (spawned, unless --ref says
otherwise; --ref-kind picks the strong one, the simple one or both), then
against --ngircd if given, then against --addr, and prints one JSON line:
ratio_to_reference is against the strong reference, ratio_to against the
others.
`)
}

func newFlags(name string, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("chatbench "+name, flag.ContinueOnError)
	fs.StringVar(&o.Addr, "addr", "", "chat server(s) to measure, host:port[,host:port...]: loopback only (empty: reference only)")
	fs.StringVar(&o.Addr2, "addr2", "", "cross: the gateway the receivers use; crash: the gateways the users go back to")
	fs.IntVar(&o.PID, "pid", 0, "process id of the server at --addr, for its RSS (/proc/PID/status); crash: the gateway process it kills")
	fs.StringVar(&o.Ref, "ref", "spawn", "reference server: spawn (a child process), inproc, off, or host:port of a running `chatbench ref`")
	fs.IntVar(&o.RefPID, "ref-pid", 0, "process id of the reference given as host:port, for its RSS")
	fs.StringVar(&o.RefKind, "ref-kind", "both", "which references a spawned or in-process reference runs: strong (batches what one read returns into one buffer per member), simple (a reader and a queue-coalescing writer per client), or both; ratios are against the strong one")
	fs.StringVar(&o.NgIRCd, "ngircd", "", "host:port of a running IRC server (ngIRCd) to measure in the same rounds, over IRC (loopback only)")
	fs.IntVar(&o.NgIRCdPID, "ngircd-pid", 0, "process id of the --ngircd server, for its RSS and CPU time")
	fs.IntVar(&o.Conns, "conns", 100, "clients (C)")
	fs.IntVar(&o.Senders, "senders", 10, "clients that send (S)")
	fs.IntVar(&o.Window, "window", 16, "fanout: unacknowledged lines each sender may have out")
	fs.Float64Var(&o.Rate, "rate", 1000, "latency, cross, churn: total chat lines per second (R)")
	fs.IntVar(&o.Size, "size", 64, "bytes of text per chat line")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long lines are sent (after the warm-up)")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "lines sent before measuring starts")
	fs.Int64Var(&o.MaxLines, "max-lines", 10_000_000, "stop sending after this many lines in all")
	fs.StringVar(&o.Room, "room", "bench", "room of the chat scenarios")
	fs.IntVar(&o.RoomSize, "room-size", 100, "idle: members per room")
	fs.IntVar(&o.Sources, "sources", 0, "local 127.0.0.x addresses to connect from (0: one per 5,000 connections)")
	fs.IntVar(&o.Concurrency, "concurrency", 50, "handshakes in progress at once")
	fs.DurationVar(&o.Settle, "settle", 5*time.Second, "idle: wait after the last handshake before reading RSS; crash: longest wait, once the users are back, for the notices about them")
	fs.DurationVar(&o.Hold, "hold", 5*time.Second, "idle: keep the connections this long, checking none is dropped; crash: keep watching this long for late notices")
	fs.Float64Var(&o.ChurnRate, "churn-rate", 50, "churn: connections opened (and closed) per second")
	fs.IntVar(&o.ChurnMax, "churn-max", 100_000, "churn: most connections opened in all")
	fs.DurationVar(&o.Timeout, "timeout", 0, "hard limit on the whole run (default: generous, from the other flags)")
	fs.StringVar(&o.Proto, "proto", "classic", "what --addr speaks: classic, or irc (chatd's --irc port: NICK/USER, JOIN, PRIVMSG); the reference is always classic")
	fs.StringVar(&o.Nick, "nick", "", "nickname prefix (default: random per run)")
	fs.BoolVar(&o.Quiet, "q", false, "no progress on stderr")
	fs.IntVar(&o.Rounds, "rounds", 1, "measure reference and target this many times, alternating; ratios are the median of the rounds'")
	return fs
}

func runScenario(ctx context.Context, name string, args []string, stdout io.Writer) error {
	run, ok := scenarios[name]
	if !ok {
		usage(os.Stderr)
		return fmt.Errorf("unknown scenario %q", name)
	}
	o := &options{}
	fs := newFlags(name, o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := o.check(name); err != nil {
		return err
	}
	if o.Timeout == 0 {
		o.Timeout = 3*(o.Duration+o.Warmup+o.Settle+o.Hold) + 2*time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	quiet = o.Quiet

	var targets []*target
	defer func() {
		for _, t := range targets {
			if t.stop != nil {
				t.stop()
			}
		}
	}()
	if o.Ref != "off" {
		for _, kind := range o.refKinds() {
			t, err := startRef(ctx, o, kind)
			if err != nil {
				return fmt.Errorf("reference: %w", err)
			}
			targets = append(targets, t)
		}
	}
	if o.NgIRCd != "" {
		targets = append(targets, &target{Name: "ngircd", Addrs: []string{o.NgIRCd}, PID: o.NgIRCdPID, IRC: true})
	}
	if o.Addr != "" {
		if o.Proto == "irc" {
			targets = append(targets, &target{Name: "chatd-irc", Addrs: splitAddrs(o.Addr), PID: o.PID, IRC: true})
		} else {
			targets = append(targets, &target{Name: "chatd", Addrs: splitAddrs(o.Addr), PID: o.PID})
		}
	}
	if len(targets) == 0 {
		return errors.New("nothing to measure: give --addr, or leave --ref on")
	}
	s, err := runRounds(ctx, o, targets, run)
	if err != nil {
		return err
	}
	s.Scenario = name
	o.DurationS, o.WarmupS = o.Duration.Seconds(), o.Warmup.Seconds()
	if name == "idle" || name == "crash" {
		o.SettleS, o.HoldS = o.Settle.Seconds(), o.Hold.Seconds()
	}
	s.Params = *o
	s.OK = len(s.Problems) == 0
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// runRounds runs the scenario o.Rounds times; the summary holds every
// round's runs, each round's ratios, and their medians as the ratios.
func runRounds(ctx context.Context, o *options, targets []*target,
	run func(context.Context, *options, []*target) (*summary, error)) (*summary, error) {
	if o.Rounds <= 1 {
		return run(ctx, o, targets)
	}
	all := &summary{}
	base := o.Nick
	for r := range o.Rounds {
		o.Nick = base + "r" + strconv.Itoa(r)
		progressf("round %d of %d", r+1, o.Rounds)
		s, err := run(ctx, o, targets)
		if err != nil {
			return nil, err
		}
		all.Runs = append(all.Runs, s.Runs...)
		all.Problems = append(all.Problems, s.Problems...)
		if s.Ratio != nil {
			all.Rounds = append(all.Rounds, s.Ratio)
		}
		if s.RatioTo != nil {
			all.roundsTo = append(all.roundsTo, s.RatioTo)
		}
	}
	o.Nick = base
	all.Ratio = medians(all.Rounds)
	if len(all.roundsTo) > 0 {
		all.RatioTo = map[string]map[string]float64{}
		for name := range all.roundsTo[0] {
			var ms []map[string]float64
			for _, r := range all.roundsTo {
				ms = append(ms, r[name])
			}
			all.RatioTo[name] = medians(ms)
		}
	}
	return all, nil
}

// medians gives, for every key of the first map, the median of its values.
func medians(rounds []map[string]float64) map[string]float64 {
	if len(rounds) == 0 {
		return nil
	}
	out := map[string]float64{}
	for k := range rounds[0] {
		var vs []float64
		for _, m := range rounds {
			vs = append(vs, m[k])
		}
		out[k] = median(vs)
	}
	return out
}

// refKinds lists the reference kinds --ref-kind asks for, strong first.
func (o *options) refKinds() []string {
	if o.Ref != "spawn" && o.Ref != "inproc" {
		return []string{"strong"} // a running `chatbench ref`, whatever its kind
	}
	switch o.RefKind {
	case "strong", "simple":
		return []string{o.RefKind}
	}
	return []string{"strong", "simple"}
}

// refName is the target name of a reference kind.
func refName(kind string) string {
	if kind == "simple" {
		return "reference-simple"
	}
	return "reference"
}

// isRef reports whether t is a reference server.
func (t *target) isRef() bool { return strings.HasPrefix(t.Name, "reference") }

// setRatios fills s.Ratio (against the strong reference) and s.RatioTo
// (against every other target) for the last target, the server under
// measurement, from ratios(got, ref), indexes into targets. Nothing is set
// when the last target is itself a reference.
func setRatios(s *summary, targets []*target, ratios func(got, ref int) map[string]float64) {
	last := len(targets) - 1
	if last < 1 || targets[last].isRef() {
		return
	}
	for i := range last {
		m := ratios(last, i)
		if targets[i].Name == "reference" {
			s.Ratio = m
			continue
		}
		if s.RatioTo == nil {
			s.RatioTo = map[string]map[string]float64{}
		}
		s.RatioTo[targets[i].Name] = m
	}
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return round3((s[len(s)/2-1] + s[len(s)/2]) / 2)
}

func (o *options) check(name string) error {
	for _, a := range append(splitAddrs(o.Addr), splitAddrs(o.Addr2)...) {
		if err := checkLoopback(a); err != nil {
			return err
		}
	}
	if o.Ref != "spawn" && o.Ref != "inproc" && o.Ref != "off" {
		if err := checkLoopback(o.Ref); err != nil {
			return fmt.Errorf("--ref: %w", err)
		}
	}
	if o.NgIRCd != "" {
		if err := checkLoopback(o.NgIRCd); err != nil {
			return fmt.Errorf("--ngircd: %w", err)
		}
	}
	if o.RefKind != "strong" && o.RefKind != "simple" && o.RefKind != "both" {
		return errors.New("--ref-kind must be strong, simple or both")
	}
	if name == "cross" && o.Addr != "" && o.Addr2 == "" {
		return errors.New("cross needs --addr2 (the receivers' gateway)")
	}
	if name == "crash" {
		if len(splitAddrs(o.Addr)) != 1 || o.Addr2 == "" || o.PID <= 0 {
			return errors.New("crash needs --addr (one gateway), --addr2 (where its users go back) and --pid (that gateway's process, which it kills)")
		}
		o.Ref = "off" // nothing to compare with
	}
	switch {
	case o.Conns < 1:
		return errors.New("--conns must be at least 1")
	case o.Senders < 1 || o.Senders > o.Conns && name != "idle":
		return errors.New("--senders must be 1..conns")
	case o.Window < 1:
		return errors.New("--window must be at least 1")
	case o.Rate <= 0 || o.ChurnRate <= 0:
		return errors.New("--rate and --churn-rate must be positive")
	case o.Duration <= 0 || o.Warmup < 0:
		return errors.New("--duration must be positive")
	case o.RoomSize < 1:
		return errors.New("--room-size must be at least 1")
	case o.Rounds < 1 || o.Rounds > 20:
		return errors.New("--rounds must be 1..20")
	case o.Size < 16 || o.Size > 4000:
		return errors.New("--size must be 16..4000")
	}
	if o.Nick == "" {
		o.Nick = "b" + strconv.FormatInt(time.Now().UnixNano()%1_000_000, 36)
	}
	if len(o.Nick) > 16 {
		return errors.New("--nick: at most 16 characters")
	}
	if o.Sources == 0 {
		o.Sources = (o.Conns + 4999) / 5000
	}
	o.Sources = min(max(o.Sources, 1), 250)
	return nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// checkLoopback refuses any target that is not on this machine's loopback
// range: load is only ever sent to 127.0.0.0/8 or ::1.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed", addr)
	}
	return nil
}

// sources returns the local addresses to connect from: 127.0.0.1 ... n.
func sources(n int) []net.IP {
	if n <= 1 {
		return nil
	}
	ips := make([]net.IP, n)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(1+i))
	}
	return ips
}

// startRef gives a reference target of kind (strong or simple).
func startRef(ctx context.Context, o *options, kind string) (*target, error) {
	switch o.Ref {
	case "inproc":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s := newReference(kind, ln)
		return &target{Name: refName(kind), Addrs: []string{s.addr()}, PID: os.Getpid(), stop: s.close}, nil
	case "spawn":
		return spawnRef(ctx, kind)
	}
	return &target{Name: "reference", Addrs: []string{o.Ref}, PID: o.RefPID}, nil
}

// spawnRef starts `chatbench ref --kind KIND` as a child process on a free
// loopback port, so that its RSS is its own, and stops it (by its PID) when
// done.
func spawnRef(ctx context.Context, kind string) (*target, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "ref", "--listen", "127.0.0.1:0", "--kind", kind)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			addr <- strings.TrimPrefix(sc.Text(), "listening ")
		}
		close(addr)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case a, ok := <-addr:
		if !ok || checkLoopback(a) != nil {
			stop()
			return nil, fmt.Errorf("reference did not start (%q)", a)
		}
		return &target{Name: refName(kind), Addrs: []string{a}, PID: cmd.Process.Pid, stop: stop}, nil
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	stop()
	return nil, errors.New("reference did not start in time")
}

// runRef is `chatbench ref`: the reference server alone, until a signal or
// --duration.
func runRef(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("chatbench ref", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5599", "address to listen on (loopback)")
	dur := fs.Duration("duration", time.Hour, "exit after this long")
	kind := fs.String("kind", "strong", "strong (batches what one read returns into one buffer per member) or simple (a reader and a queue-coalescing writer per client)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kind != "strong" && *kind != "simple" {
		return errors.New("--kind must be strong or simple")
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	s := newReference(*kind, ln)
	fmt.Fprintf(stdout, "listening %s\n", s.addr())
	select {
	case <-ctx.Done():
	case <-time.After(*dur):
	}
	s.close()
	return nil
}

// runNgIRCdConf is `chatbench ngircd-conf`: the configuration file to run
// ngIRCd with (ngircd --nodaemon --config FILE) for --ngircd.
func runNgIRCdConf(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("chatbench ngircd-conf", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:6699", "address ngIRCd is to listen on (loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(*listen)
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("--listen %q: a port 1..65535 is needed", *listen)
	}
	_, err = io.WriteString(stdout, ngircdConf(host, p))
	return err
}

// quiet turns progress off.
var quiet bool

func progressf(format string, args ...any) {
	if !quiet {
		fmt.Fprintf(os.Stderr, "chatbench: "+format+"\n", args...)
	}
}

// cpuSeconds reads the user+system CPU time pid has used, in seconds; -1
// if unknown. Linux reports it in clock ticks of 1/100 s.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces: count fields after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return float64(u+k) / 100
}

// rssKB reads VmRSS of pid, in KiB; 0 if unknown.
func rssKB(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
