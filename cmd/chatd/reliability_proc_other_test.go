//go:build reliability && !linux

package main

import "syscall"

func relSysProcAttr() *syscall.SysProcAttr { return nil }

func relMaxFiles() int { return 1024 }
