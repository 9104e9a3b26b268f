# rbbench.rb - an allocation-heavy, deterministic Ruby workload (bench/run.sh).
#
# Usage: ruby rbbench.rb SCALE. Strings built and split, hashes of arrays,
# objects with instance variables in trees, sorting, symbols and big
# integers: Ruby's objects live in its own heap pages, but their strings,
# arrays and hash tables over a few words are malloc'd, resized with realloc
# and freed by the garbage collector. Prints "RESULT checksum=...", the same
# under every allocator.

WORDS = %w[alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu
           malloc free page segment heap arena block span slab thread purge]

class Node
  attr_reader :left, :right, :value
  def initialize(left, right, value)
    @left = left
    @right = right
    @value = value
    @tag = "n#{value}"
  end
end

def tree(depth, value)
  return Node.new(nil, nil, value) if depth.zero?
  Node.new(tree(depth - 1, 2 * value), tree(depth - 1, 2 * value + 1), value)
end

def tree_sum(node)
  sum = 0
  stack = [node]
  until stack.empty?
    n = stack.pop
    sum += n.value
    stack << n.left if n.left
    stack << n.right if n.right
  end
  sum
end

def text_round(rng, lines)
  counts = Hash.new(0)
  buf = +""
  lines.times do
    line = Array.new(rng.rand(4..20)) { WORDS[rng.rand(WORDS.size)] }.join(" ")
    buf << line << "\n"
    line.split.each { |w| counts[w] += 1 }
  end
  words = buf.split
  counts.sum { |w, c| w.size * c } + words.size
end

def table_round(rng, rows)
  table = {}
  rows.times do |i|
    key = "key-#{rng.rand(rows / 2)}"
    (table[key] ||= []) << [i, rng.rand(1000).to_s * rng.rand(1..8), i.to_f / 3]
  end
  table.values.map { |v| v.sort_by { |r| -r[0] }.first[1].size }.sum + table.size
end

scale = (ARGV[0] || "4").to_i
rng = Random.new(20261202)
check = 0
scale.times do |round|
  check += tree_sum(tree(15, round + 1)) % 1_000_003
  check += text_round(rng, 20_000)
  check += table_round(rng, 60_000)
  check += (1..400).reduce(1) { |a, b| a * (b + round) } % 1_000_000_007
  check %= 1 << 61
end
puts "RESULT checksum=#{check}"
