# nftjail demo: a simulated SASL brute force against a mail server, banned in
# the kernel. Everything happens in two throwaway network namespaces and a
# private /var/log; the host's firewall and logs are never touched.
# Run by `cargo xtask demo` with NFTJAIL and XTASK set.
set -euo pipefail
SRV=nftjail-demo-srv-$$
ATK=nftjail-demo-atk-$$
SERVER=192.0.2.1
ATTACKER=192.0.2.66

cleanup() {
    ip netns pids "$SRV" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$ATK" 2>/dev/null || true
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "network: $SRV ($SERVER, mail server) <-veth-> $ATK ($ATTACKER, attacker)"
ip netns add "$SRV"
ip netns add "$ATK"
ip link add demo-srv netns "$SRV" type veth peer name demo-atk netns "$ATK"
ip -n "$SRV" addr add "$SERVER/24" dev demo-srv
ip -n "$ATK" addr add "$ATTACKER/24" dev demo-atk
for ns in "$SRV" "$ATK"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set demo-srv up
ip -n "$ATK" link set demo-atk up

# The server side runs in its own mount namespace with a tmpfs on /var/log, so
# the daemon's built-in config (which follows /var/log/mail.log) reads the
# simulated log, not the host's, and its state store is thrown away with it.
ip netns exec "$SRV" unshare --mount --propagation private bash -s <<INNER
set -euo pipefail
mount -t tmpfs nftjail-demo /var/log
mkdir -p /run/nftjail /var/lib/nftjail
mount -t tmpfs nftjail-demo-run /run/nftjail
mount -t tmpfs nftjail-demo-state /var/lib/nftjail
: > /var/log/mail.log
"$XTASK" listen $SERVER:587 &
sleep 0.2
echo "attacker connects to the submission port before any ban:"
ip netns exec "$ATK" "$XTASK" connect $SERVER:587

echo
echo "starting: nftjail run (built-in default config, no config file)"
"$NFTJAIL" run 2> /var/log/nftjail.log &
DAEMON=\$!
for _ in \$(seq 100); do grep -q 'INFO ready:' /var/log/nftjail.log && break; sleep 0.05; done
cat /var/log/nftjail.log

echo
echo "simulated brute force: 5 failed SASL logins from $ATTACKER appended to /var/log/mail.log"
for i in 1 2 3 4 5; do
  echo "\$(LC_ALL=C date '+%b %e %H:%M:%S') mx1 postfix/submission/smtpd[1068\$i]: warning: unknown[$ATTACKER]: SASL LOGIN authentication failed: authentication failure" >> /var/log/mail.log
done
tail -n 2 /var/log/mail.log
for _ in \$(seq 100); do grep -q 'ban:' /var/log/nftjail.log && break; sleep 0.02; done
echo
echo "daemon log:"
grep 'ban:' /var/log/nftjail.log || { echo "no ban logged"; cat /var/log/nftjail.log; exit 1; }

echo
echo "\$ nft list set inet nftjail postfix-sasl-v4"
nft list set inet nftjail postfix-sasl-v4

echo
echo "attacker tries again:"
ip netns exec "$ATK" "$XTASK" connect $SERVER:587

echo
echo "\$ nft list chain inet nftjail input"
nft list chain inet nftjail input

echo
echo "\$ nftjail status postfix-sasl     (over the control socket, fail2ban-client's layout)"
"$NFTJAIL" status postfix-sasl

kill -TERM \$DAEMON
wait \$DAEMON || true
INNER
say "demo done; namespaces removed"
