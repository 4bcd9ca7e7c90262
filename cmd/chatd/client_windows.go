package main

import (
	"os"

	"golang.org/x/sys/windows"
)

// enableVT makes f, a console, interpret ANSI escape sequences (for the
// line editor and colours). Windows 10 and later can; it reports false on
// older consoles, which then get plain lines.
func enableVT(f *os.File) bool {
	h := windows.Handle(f.Fd())
	var mode uint32
	if err := windows.GetConsoleMode(h, &mode); err != nil {
		return false
	}
	const want = windows.ENABLE_PROCESSED_OUTPUT | windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING
	if mode&want == want {
		return true
	}
	return windows.SetConsoleMode(h, mode|want) == nil
}
