# Sourced by the benchmark scripts that run Apache ZooKeeper beside zkr: installs Debian's
# `zookeeper` package if it is missing and sets CP to the classpath its server needs.
if [ ! -f /usr/share/java/zookeeper.jar ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper) >/dev/null
fi
CP=/usr/share/java/zookeeper.jar
for j in netty-codec netty-resolver netty-transport-native-unix-common netty-all slf4j-simple; do
  if [ -f "/usr/share/java/$j.jar" ]; then CP="$CP:/usr/share/java/$j.jar"; fi
done
