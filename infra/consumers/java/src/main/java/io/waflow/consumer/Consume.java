package io.waflow.consumer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Reads waflow's typed topics with nothing of waflow: the writer schemas come from the schemas
 * topic into an Avro SchemaStore, and each record is read with the newest version of its
 * schema (Avro schema resolution). Prints one JSON line per record: topic, key, schema name
 * and the record (timestamps as epoch milliseconds, bytes as base64).
 *
 * Usage: Consume BOOTSTRAP SCHEMAS_TOPIC TOPIC [TOPIC ...]
 * Reads each topic from the beginning to its end offset at start, then exits.
 */
public final class Consume {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: Consume BOOTSTRAP SCHEMAS_TOPIC TOPIC [TOPIC ...]");
            System.exit(2);
        }
        String bootstrap = args[0];
        SchemaStore.Cache store = new SchemaStore.Cache();
        Map<String, Schema> newest = new HashMap<>();
        Map<String, Integer> newestVersion = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> rec : readAll(bootstrap, List.of(args[1]))) {
            JsonNode entry = JSON.readTree(rec.value());
            Schema schema = new Schema.Parser().parse(entry.get("schema").toString());
            store.addSchema(schema);
            String name = entry.get("name").asText();
            int version = entry.get("version").asInt();
            if (version >= newestVersion.getOrDefault(name, 0)) {
                newest.put(name, schema);
                newestVersion.put(name, version);
            }
        }
        Map<String, BinaryMessageDecoder<GenericRecord>> decoders = new HashMap<>();
        List<String> topics = List.of(args).subList(2, args.length);
        for (ConsumerRecord<byte[], byte[]> rec : readAll(bootstrap, topics)) {
            long fingerprint = ByteBuffer.wrap(rec.value(), 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            Schema writer = store.findByFingerprint(fingerprint);
            if (writer == null) {
                throw new IllegalStateException("no schema on the schemas topic for fingerprint "
                        + Long.toHexString(fingerprint) + " (" + rec.topic() + "/" + rec.offset() + ")");
            }
            String name = writer.getFullName();
            BinaryMessageDecoder<GenericRecord> decoder = decoders.computeIfAbsent(
                    name, n -> new BinaryMessageDecoder<>(GenericData.get(), newest.get(n), store));
            GenericRecord record = decoder.decode(rec.value());
            ObjectNode line = NODES.objectNode();
            line.put("topic", rec.topic());
            line.put("key", rec.key() == null ? null : new String(rec.key(), StandardCharsets.UTF_8));
            line.put("name", name);
            line.put("writer_fingerprint", hex(rec.value(), 2, 10));
            line.set("record", toJson(record));
            System.out.println(JSON.writeValueAsString(line));
        }
    }

    /** Bytes as hex, in the order they sit in the record (the fingerprint is little-endian). */
    static String hex(byte[] bytes, int from, int to) {
        StringBuilder out = new StringBuilder();
        for (int i = from; i < to; i++) {
            out.append(String.format("%02x", bytes[i]));
        }
        return out.toString();
    }

    /** Every record of `topics` from the beginning to the end offsets read at start. */
    static List<ConsumerRecord<byte[], byte[]>> readAll(String bootstrap, List<String> topics) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("enable.auto.commit", "false");
        props.put("isolation.level", "read_committed");
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (String topic : topics) {
                consumer.partitionsFor(topic).forEach(p -> partitions.add(new TopicPartition(topic, p.partition())));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
            long deadline = System.currentTimeMillis() + 120_000;
            while (partitions.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("topics did not reach their end offsets in 120 s");
                }
                consumer.poll(Duration.ofMillis(500)).forEach(out::add);
            }
        }
        return out;
    }

    static JsonNode toJson(Object value) {
        if (value == null) {
            return NODES.nullNode();
        } else if (value instanceof GenericRecord record) {
            ObjectNode node = NODES.objectNode();
            for (Schema.Field field : record.getSchema().getFields()) {
                node.set(field.name(), toJson(record.get(field.name())));
            }
            return node;
        } else if (value instanceof Map<?, ?> map) {
            ObjectNode node = NODES.objectNode();
            map.forEach((k, v) -> node.set(k.toString(), toJson(v)));
            return node;
        } else if (value instanceof List<?> list) {
            ArrayNode node = NODES.arrayNode();
            list.forEach(v -> node.add(toJson(v)));
            return node;
        } else if (value instanceof ByteBuffer bytes) {
            byte[] copy = new byte[bytes.remaining()];
            bytes.duplicate().get(copy);
            return NODES.textNode(Base64.getEncoder().encodeToString(copy));
        } else if (value instanceof Long n) {
            return NODES.numberNode(n);
        } else if (value instanceof Integer n) {
            return NODES.numberNode(n);
        } else if (value instanceof Double n) {
            return NODES.numberNode(n);
        } else if (value instanceof Boolean b) {
            return NODES.booleanNode(b);
        }
        return NODES.textNode(value.toString()); // strings (Utf8) and enum symbols
    }
}
