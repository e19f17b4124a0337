#!/usr/bin/env python3
"""Drives stockd's Lua scripts with a fixed workload, for scripts/lua-cost.sh.

    lua_cost.py PORT LUA_DIR setup             load the scripts, register the SKUs
    lua_cost.py PORT LUA_DIR flash|catalog N   run N orders (flash: N batches of 11)

Speaks RESP over a plain socket (standard library only). The keys and
arguments follow each script's KEYS/ARGV header; every reply is checked, so a
script whose contract moved on fails here instead of measuring an error path.
Scenarios:
  flash    batches of 11 one-line orders of one SKU (as batch.rs coalesces them)
  catalog  orders of 3 lines in 3 partitions; 3 of 4 committed then fulfilled,
           1 of 4 released
"""
import socket
import sys

ORDERS_PER_BATCH = 11
PARTITIONS = (7, 8, 9)
LOCATIONS = ('L1', 'L2', 'L3')
TTL_MS = '1800000'
TOMBSTONE_MS = '86400000'


class Resp:
    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port))
        self.rf = self.sock.makefile('rb')

    def call(self, *args):
        out = [b'*%d\r\n' % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b'$%d\r\n%s\r\n' % (len(a), a))
        self.sock.sendall(b''.join(out))
        return self.read()

    def read(self):
        line = self.rf.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b'+':
            return rest.decode()
        if kind == b'-':
            raise RuntimeError(rest.decode())
        if kind == b':':
            return int(rest)
        if kind == b'$':
            n = int(rest)
            return None if n < 0 else self.rf.read(n + 2)[:-2].decode()
        if kind == b'*':
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f'unexpected reply {line!r}')


def order_reply(rep):
    """An order reply as [tag, status, header]: one tab-joined string, or the
    array scripts before that answered (so an older --base still runs)."""
    return rep.split('\t', 2) if isinstance(rep, str) else rep


def part_keys(p):
    return [f's:{{{p}}}:{k}' for k in ('lvl', 'holds', 'exp', 'ev', 'ops')]


def header_key(order):
    return f's:{{o}}:{order}'


def main():
    port, lua_dir, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    r = Resp(port)
    common = open(f'{lua_dir}/common.lua').read()
    sha = {name: r.call('SCRIPT', 'LOAD', common + '\n' + open(f'{lua_dir}/{name}.lua').read())
           for name in ('reserve', 'commit', 'fulfill', 'release')}
    if mode == 'setup':
        record = '{' + ','.join(f'{loc}={{1000000000,0,0,0}}' for loc in LOCATIONS) + '}'
        for p in PARTITIONS:
            r.call('EVAL', "redis.call('HSET', KEYS[1], '#gen', 'g1', ARGV[1], cmsgpack.pack({stop=0,l=" + record
                   + "})) return 1", 1, part_keys(p)[0], f'SKU-{p}')
        return

    def reserve(orders, lines):
        groups = []
        for p, _ in lines:
            if p not in groups:
                groups.append(p)
        keys = [k for p in groups for k in part_keys(p)] + [header_key(o) for o in orders]
        args = ['0', '100', len(groups), len(orders)]
        for o in orders:
            args += [o, TTL_MS, '', TOMBSTONE_MS, len(lines), len(LOCATIONS), *LOCATIONS]
            for p, sku in lines:
                args += [groups.index(p) + 1, sku, '', 1]
        replies = r.call('EVALSHA', sha['reserve'], len(keys), *keys, *args)
        replies = [order_reply(rep) for rep in replies]
        for rep in replies:
            if rep[0] != 'RESERVED':
                raise RuntimeError(f'reserve: {rep}')
        return replies, groups

    def move(script, order, created, groups, extra):
        keys = [header_key(order)] + [k for p in groups for k in part_keys(p)]
        rep = order_reply(r.call('EVALSHA', sha[script], len(keys), *keys, '0', '100', len(groups), order, created,
                                 *extra))
        if rep[0] != 'OK':
            raise RuntimeError(f'{script}: {rep}')

    n = int(sys.argv[4])
    if mode == 'flash':
        for b in range(n):
            reserve([f'order-{b}-{i}' for i in range(ORDERS_PER_BATCH)], [(PARTITIONS[0], f'SKU-{PARTITIONS[0]}')])
    elif mode == 'catalog':
        for i in range(n):
            order = f'order-{i}'
            replies, groups = reserve([order], [(p, f'SKU-{p}') for p in PARTITIONS])
            # The reply's third value: the header as stored (its second
            # field is created-at), or created-at itself in scripts before
            # replies carried the stored header (so an older --base still runs).
            created = str(replies[0][2]).split('\t')[1 if '\t' in str(replies[0][2]) else 0]
            if i % 4 == 0:
                move('release', order, created, groups, [TOMBSTONE_MS, 'changed mind'])
            else:
                move('commit', order, created, groups, [])
                move('fulfill', order, created, groups, [TOMBSTONE_MS])
    else:
        raise SystemExit(f'unknown mode {mode}')


if __name__ == '__main__':
    main()
