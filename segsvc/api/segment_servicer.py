"""SegmentService: translation only; the rules are in service_layer.segments/reports."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from segmentation.v1 import segment_service_pb2 as pb
from segmentation.v1 import segment_service_pb2_grpc as pb_grpc
from segsvc.api import messages, request_ids
from segsvc.api.call_context import current_account_id
from segsvc.domain.models import Segment
from segsvc.service_layer.reports import ReportService
from segsvc.service_layer.segments import Segments


class SegmentServicer(pb_grpc.SegmentServiceServicer):
    """gRPC face of the Segments and ReportService use cases."""

    def __init__(self, segments: Segments, reports: ReportService) -> None:
        self.segments = segments
        self.reports = reports

    def CreateSegment(
        self, request: pb.CreateSegmentRequest, context: grpc.ServicerContext
    ) -> pb.CreateSegmentResponse:
        def respond(segment: Segment) -> pb.CreateSegmentResponse:
            return pb.CreateSegmentResponse(segment=messages.segment(segment))

        result = self.segments.create(
            request.slug,
            request.description,
            request.auto_percent if request.HasField("auto_percent") else None,
            request.rollout_salt,
            request.validate_only,
            current_account_id(),
            request_ids.once(request, respond),
        )
        return request_ids.answer(result, respond, pb.CreateSegmentResponse)

    def DeleteSegment(
        self, request: pb.DeleteSegmentRequest, context: grpc.ServicerContext
    ) -> pb.DeleteSegmentResponse:
        segment = self.segments.delete(request.slug, current_account_id())
        return pb.DeleteSegmentResponse(segment=messages.segment(segment))

    def GetSegment(
        self, request: pb.GetSegmentRequest, context: grpc.ServicerContext
    ) -> pb.GetSegmentResponse:
        return pb.GetSegmentResponse(segment=messages.segment(self.segments.get(request.slug)))

    def ListSegments(
        self, request: pb.ListSegmentsRequest, context: grpc.ServicerContext
    ) -> pb.ListSegmentsResponse:
        page, next_token = self.segments.list_page(request.page_size, request.page_token)
        return pb.ListSegmentsResponse(
            segments=[messages.segment(s) for s in page], next_page_token=next_token
        )

    def ListSegmentUsers(
        self, request: pb.ListSegmentUsersRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ListSegmentUsersResponse]:
        for chunk in self.segments.stream_members(request.slug):
            yield pb.ListSegmentUsersResponse(user_ids=chunk)

    def GetHistoryReport(
        self, request: pb.GetHistoryReportRequest, context: grpc.ServicerContext
    ) -> pb.GetHistoryReportResponse:
        url, expires_at = self.reports.link(request.year, request.month, list(request.user_ids))
        return pb.GetHistoryReportResponse(url=url, expires_at=messages.timestamp(expires_at))

    def StreamHistoryReport(
        self, request: pb.StreamHistoryReportRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamHistoryReportResponse]:
        report = self.reports.request(request.year, request.month, list(request.user_ids))
        for chunk in self.reports.stream(report):
            yield pb.StreamHistoryReportResponse(chunk=chunk)
