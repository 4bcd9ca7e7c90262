// Command testprogress shows the progress of a long `go test -json` run
// (make test): one line per top-level test as it ends, with its time, and
// the whole output of each test that fails; then the package's result. It
// exits 1 if anything failed or the run ended without a package result.
//
//	go test -json ./cmd/chatd/ | go run ./internal/testprogress
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	start := time.Now()
	output := map[string]*strings.Builder{} // by package and test
	failed, results, done := false, 0, 0
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // build errors and the like
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			b := output[key]
			if b == nil {
				b = new(strings.Builder)
				output[key] = b
			}
			b.WriteString(e.Output)
		case "pass", "fail", "skip":
			if e.Action == "fail" {
				failed = true
				if b := output[key]; b != nil {
					fmt.Print(b.String())
				}
			}
			delete(output, key)
			switch {
			case e.Test == "":
				results++
				fmt.Printf("%s %s (%.1fs)\n", map[string]string{"pass": "ok  ", "fail": "FAIL", "skip": "skip"}[e.Action], e.Package, e.Elapsed)
			case !strings.Contains(e.Test, "/"):
				done++
				fmt.Printf("  %-4s %-60s %6.1fs  [%d done, %s]\n", strings.ToUpper(e.Action), e.Test, e.Elapsed, done,
					time.Since(start).Round(time.Second))
			}
		}
	}
	if failed || results == 0 {
		os.Exit(1)
	}
}
