"""A transparency-log witness (C2SP tlog-witness) and the gateway's side of talking to one."""
