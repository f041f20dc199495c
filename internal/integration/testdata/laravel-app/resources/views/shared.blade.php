shared={{ $shared ?? 'none' }}
