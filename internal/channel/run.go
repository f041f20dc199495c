package channel

// AppendRun appends a Run frame to b: the idle worker that reads it runs script (an absolute path)
// as php-cli would, in the role given ("queue" or "scheduler"), with argv as its $argv (argv[0]
// names the script, as php-cli's; none: [script]), and exits with the script's status.
func AppendRun(b []byte, role, script string, argv []string) []byte {
	var s Serializer
	s.Array(3)
	s.Pair("role", role)
	s.Pair("script", script)
	s.String("argv")
	s.Array(len(argv))
	for i, a := range argv {
		s.Int(int64(i))
		s.String(a)
	}
	s.Close()
	s.Close()
	return append(AppendHeader(b, TypeRun, 0, len(s.B)), s.B...)
}
