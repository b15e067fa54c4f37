syscall::close:entry
