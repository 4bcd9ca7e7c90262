package termclient

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"sync"

	"golang.org/x/term"
)

// console is where the user types and reads: a terminal with line editing,
// or plain lines for pipes and scripts.
type console interface {
	// ReadLine returns the next line typed, without its line ending, or
	// io.EOF when the input ends (Ctrl-D, Ctrl-C on a terminal).
	ReadLine() (string, error)
	// SetPrompt sets the prompt shown while reading (terminals only).
	SetPrompt(prompt string)
	// Println shows one line of output.
	Println(line string) error
}

// termConsole is a terminal in raw mode, driven by x/term's Terminal: line
// editing and history at the prompt, and output printed above the prompt
// without garbling what is being typed.
type termConsole struct {
	t   *term.Terminal
	out io.Writer
}

func newTermConsole(in io.Reader, out io.Writer, prompt string) *termConsole {
	return &termConsole{out: out, t: term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{newKeyReader(in), out}, prompt)}
}

func (c *termConsole) ReadLine() (string, error) {
	line, err := c.t.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) { // a pasted line is a line
		err = nil
	}
	return line, err
}

func (c *termConsole) SetPrompt(prompt string) { c.t.SetPrompt(prompt) }

func (c *termConsole) Println(line string) error {
	_, err := c.t.Write([]byte(line + "\n"))
	return err
}

// clearPrompt removes the prompt and any half-typed line from the screen,
// leaving the cursor at the start of its line: for when the client ends.
func (c *termConsole) clearPrompt() {
	c.t.SetPrompt("")
	c.t.Write(nil)                    // repaints the prompt's rows: no prompt, the typed text
	io.WriteString(c.out, "\r\x1b[K") // and erases that text
}

// SetSize tells the terminal its size, for wrapping the line being edited.
func (c *termConsole) SetSize(width, height int) error { return c.t.SetSize(width, height) }

// maxInputLine bounds a line read from a pipe; longer ones are cut (the
// server would refuse them anyway).
const maxInputLine = 64 << 10

// plainConsole reads and writes plain lines, for when the input is not a
// terminal: scripts, pipes and tests.
type plainConsole struct {
	r  *bufio.Reader
	mu sync.Mutex
	w  io.Writer
}

func newPlainConsole(in io.Reader, out io.Writer) *plainConsole {
	return &plainConsole{r: bufio.NewReader(in), w: out}
}

func (c *plainConsole) ReadLine() (string, error) {
	line, err := readLine(c.r, maxInputLine)
	if err == io.EOF && line != "" { // a last line without a newline
		err = nil
	}
	return strings.TrimSuffix(line, "\r"), err
}

func (c *plainConsole) SetPrompt(string) {}

func (c *plainConsole) Println(line string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := io.WriteString(c.w, line+"\n")
	return err
}

// readLine reads up to the next \n and returns the line without it. A line
// longer than max is cut to max bytes and the rest of it is skipped. At the
// end of the input it returns what was read with io.EOF.
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		if room := max - len(b); room > 0 {
			if len(frag) > room {
				b = append(b, frag[:room]...)
			} else {
				b = append(b, frag...)
			}
		}
		switch err {
		case nil:
			return strings.TrimSuffix(string(b), "\n"), nil
		case bufio.ErrBufferFull:
			continue
		default:
			return string(b), err
		}
	}
}
