package meshops.spark;

import org.apache.spark.QueryContext;
import org.apache.spark.sql.AnalysisException;

import scala.Option;
import scala.collection.immutable.Map;
import scala.collection.immutable.Map$;

/** A write to a shared input catalog: an analysis error, so pyspark raises AnalysisException. */
public final class SharedInputException extends AnalysisException {
  private static final long serialVersionUID = 1L;

  SharedInputException(String message) {
    super(message, Option.empty(), Option.empty(), Option.empty(), Option.empty(), noParameters(),
        new QueryContext[0]);
  }

  private static Map<String, String> noParameters() {
    return Map$.MODULE$.empty();
  }
}
